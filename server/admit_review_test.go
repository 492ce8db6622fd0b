package server

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
)

// A request whose head is whole but whose body never comes must not hold
// a place: net/http reads (discards) an unread body after any handler
// that did not read it, and a handler that never gives the place back
// itself (a path that ends in /probe but is not the ProbeHandler: a 404,
// a route prefix's outside) then holds it waiting on its client.
func TestAdmissionBodyNeverComes(t *testing.T) {
	const hold = 2 * time.Second
	mux := http.NewServeMux()
	mux.HandleFunc("/probe", func(w http.ResponseWriter, r *http.Request) {
		defer admitted(r.Context()) // as ProbeHandler
		_, _ = io.WriteString(w, "probe\n")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	for _, tc := range []struct{ name, head string }{
		{"404 /x/probe content-length", "POST /x/probe HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"},
		{"404 /x/probe chunked", "POST /x/probe HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"404 /x/probe expect", "POST /x/probe HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n"},
		{"404 /x/probe http/1.0", "POST /x/probe HTTP/1.0\r\nContent-Length: 10\r\n\r\n"},
		{"404 /other content-length", "POST /other HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"},
		{"/probe content-length", "POST /probe HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"},
		{"/probe chunked", "GET /probe HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The listener defers accept (deferAccept) as the exporter's:
			// a connection comes with its head.
			addr, innerCtx, _ := admitServer(t, 1, hold, false, AdmitHandler(mux).ServeHTTP)
			warmUp(t, addr)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := io.WriteString(c, tc.head); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the request accepted", func() bool { return innerCtx.Load() == 2 })
			time.Sleep(50 * time.Millisecond) // its handler returned
			start := time.Now()
			resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + addr + "/probe")
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if took := time.Since(start); took > hold/4 {
				t.Errorf("served after %v behind a request whose body never comes (hold %v): it held the place", took, hold)
			}
		})
	}
}

// exporter-toolkit's web config wraps the server's handler (AdmitHandler
// included) in its own: a request it refuses (401, basic auth) never
// reaches AdmitHandler, and net/http then waits for its body holding the
// place.
func TestAdmissionToolkitRefusedBody(t *testing.T) {
	const hold = 2 * time.Second
	cfg := filepath.Join(t.TempDir(), "web.yml")
	// "fakepassword", exporter-toolkit's own fixed hash.
	if err := os.WriteFile(cfg, []byte("basic_auth_users:\n  u: $2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second}
	LimitAdmission(srv, 1, hold)
	srv.Handler = AdmitHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok\n") }))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = web.Serve(l, srv, &web.FlagConfig{WebConfigFile: &cfg}, slog.New(slog.DiscardHandler))
	}()
	t.Cleanup(func() { _ = srv.Close() })
	addr := l.Addr().String()
	warmUp(t, addr)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // refused: 401
	start := time.Now()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	req.SetBasicAuth("u", "fakepassword")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if took := time.Since(start); took > hold/4 {
		t.Errorf("served after %v behind a refused request whose body never comes (hold %v): it held the place", took, hold)
	}
}

// warmUp gets / on addr: its server serves, its listener defers accept.
func warmUp(t *testing.T, addr string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
}

func TestHasBody(t *testing.T) {
	for head, want := range map[string]bool{
		"GET /probe?target=x HTTP/1.1\r\nHost: x\r\nAccept: */*":   false,
		"GET / HTTP/1.1\r\nHost: x\r\ncontent-length: 0":           false,
		"GET / HTTP/1.1\r\nHost: x\r\ncontent-length:  12 ":        true,
		"POST / HTTP/1.1\r\nHost: x\r\nTRANSFER-ENCODING: chunked": true,
		"GET /Content-Length:1 HTTP/1.1\r\nHost: x":                false,
	} {
		if got := hasBody([]byte(head)); got != want {
			t.Errorf("hasBody(%q) = %v, want %v", head, got, want)
		}
	}
}
