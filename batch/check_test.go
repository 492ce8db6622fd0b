package batch

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/isp-checker/isp-checker/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func httpModule(t *testing.T, yaml string) config.Module {
	t.Helper()
	c, err := config.Load([]byte("modules:\n  m:\n    prober: http\n"+yaml), "")
	if err != nil {
		t.Fatal(err)
	}
	return *c.Modules["m"]
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func site(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/ok/", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("/missing/", http.NotFound)
	mux.HandleFunc("/broken", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/endless", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		for r.Context().Err() == nil {
			if _, err := w.Write(make([]byte, 1024)); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(10 * time.Millisecond)
		}
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok/target", http.StatusFound) })
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func TestRunClassifies(t *testing.T) {
	s := site(t)
	tlsSite := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	defer tlsSite.Close()
	refused := closedPort(t)
	rows := []Row{
		{Line: 2, Raw: s.URL + "/ok/1", Extra: []string{"live"}},
		{Line: 3, Raw: s.URL + "/missing/1", Extra: []string{"404"}},
		{Line: 4, Raw: s.URL + "/broken", Extra: []string{"500"}},
		{Line: 5, Raw: "http://" + refused + "/", Extra: []string{"refused"}},
		{Line: 6, Raw: s.URL + "/slow", Extra: []string{"slow"}},
		{Line: 7, Raw: s.URL + "/moved", Extra: []string{"redirect"}},
		{Line: 8, Raw: tlsSite.URL + "/", Extra: []string{"self-signed"}},
		{Line: 9, Raw: "ftp://example.com/", Extra: []string{"malformed"}},
		{Line: 10, Raw: strings.ToUpper(s.URL[:4]) + s.URL[4:] + "/ok/1#top", Extra: []string{"duplicate"}},
		{Line: 11, Raw: "http://169.254.169.254/latest/meta-data/", Extra: []string{"denied"}},
		{Line: 12, Raw: s.URL + "/ok/2", Extra: []string{"toomany"}, Invalid: "CSV line 12 has 3 fields, the header has 2"},
		{Line: 13, Raw: "", Extra: []string{"empty"}},
		{Line: 14, Raw: "", Extra: []string{"empty"}},
		{Line: 15, Raw: s.URL + "/endless", Extra: []string{"endless"}},
	}
	rep := Run(context.Background(), &Input{ExtraHeader: []string{"kind"}, Rows: rows}, Options{
		Module: httpModule(t, ""), Policy: config.DefaultTargetPolicy(), Concurrency: 4, Timeout: 1500 * time.Millisecond,
	})
	want := map[string]struct {
		status Status
		code   int
		err    string
	}{
		"live":        {Active, 200, ""},
		"404":         {Inactive, 404, "status code"},
		"500":         {Inactive, 500, "status code"},
		"refused":     {Error, 0, "connection refused"},
		"slow":        {Error, 0, "deadline"},
		"redirect":    {Active, 200, ""},
		"self-signed": {Error, 0, "certificate"},
		"malformed":   {Error, 0, `unsupported scheme "ftp"`},
		"denied":      {Error, 0, "target_policy"},
		"toomany":     {Error, 0, "CSV line 12 has 3 fields"},
		"empty":       {Error, 0, "empty URL"},
		"endless":     {Error, 200, "deadline"},
	}
	if rep.Duplicates != 1 || rep.Unique != 13 || len(rep.Outcomes) != 13 {
		t.Fatalf("duplicates %d unique %d outcomes %d", rep.Duplicates, rep.Unique, len(rep.Outcomes))
	}
	for i, o := range rep.Outcomes {
		kind := o.Extra[0]
		w := want[kind]
		if o.Status != w.status || o.HTTPStatus != w.code || !strings.Contains(strings.ToLower(o.Error), strings.ToLower(w.err)) {
			t.Errorf("%s: status %s code %d error %q; want %s %d containing %q", kind, o.Status, o.HTTPStatus, o.Error, w.status, w.code, w.err)
		}
		if i > 0 && o.Line < rep.Outcomes[i-1].Line {
			t.Error("outcomes not in input order")
		}
		// A malformed row is never checked: it has no check time.
		if unchecked := kind == "malformed" || kind == "toomany" || kind == "empty"; o.CheckedAt.IsZero() != unchecked {
			t.Errorf("%s: checked_at %v (a row that was never checked has none)", kind, o.CheckedAt)
		}
		if kind == "redirect" && !strings.HasSuffix(o.FinalURL, "/ok/target") {
			t.Errorf("redirect final URL %q", o.FinalURL)
		}
		if kind == "slow" && o.ResponseTimeSeconds > 3 {
			t.Errorf("slow check took %.1fs, the timeout is 1.5s", o.ResponseTimeSeconds)
		}
	}
	if rep.AllActive() {
		t.Error("AllActive with failures")
	}
}

func TestRunReportsCertExpiry(t *testing.T) {
	s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer s.Close()
	rep := Run(context.Background(), &Input{Rows: []Row{{Line: 1, Raw: s.URL}}}, Options{
		Module: httpModule(t, "    http:\n      tls_config:\n        insecure_skip_verify: true\n"), Concurrency: 1, Timeout: 5 * time.Second,
	})
	o := rep.Outcomes[0]
	want := s.Certificate().NotAfter
	if o.Status != Active || !o.CertExpiry.Equal(want) {
		t.Errorf("status %s cert expiry %v, want active and %v (%s)", o.Status, o.CertExpiry, want, o.Error)
	}
	if !rep.AllActive() {
		t.Error("AllActive false for one active URL")
	}
}

func TestRunInterrupted(t *testing.T) {
	s := site(t)
	var rows []Row
	for i := range 50 {
		rows = append(rows, Row{Line: i + 1, Raw: s.URL + "/slow?n=" + string(rune('a'+i%26)) + string(rune('a'+i/26))})
	}
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{}, 100)
	go func() {
		<-started
		cancel()
	}()
	rep := Run(ctx, &Input{Rows: rows}, Options{
		Module: httpModule(t, ""), Concurrency: 2, Timeout: 300 * time.Millisecond,
		Progress: func(int, int) { started <- struct{}{} },
	})
	if !rep.Interrupted {
		t.Fatal("not marked interrupted")
	}
	if c := rep.Counts(); len(rep.Outcomes) != 50 || c[NotChecked] == 0 || c[NotChecked] == 50 {
		t.Errorf("got %d outcomes %v; want all 50, those not started before the interrupt not checked", len(rep.Outcomes), c)
	}
	if rep.AllActive() {
		t.Error("an interrupted run is never all active")
	}
}

// TestRunInterruptListsEveryURL: an interrupted report is marked so
// whenever the interrupt came before the end, also when every check had
// already started, and lists every unique URL: those never checked and
// those whose check was cut short are there as not_checked, with why.
func TestRunInterruptListsEveryURL(t *testing.T) {
	s := site(t)
	urls := func(n int) []Row {
		rows := []Row{{Line: 1, Raw: s.URL + "/ok/a"}}
		for i := range n {
			rows = append(rows, Row{Line: i + 2, Raw: fmt.Sprintf("%s/slow?n=%d", s.URL, i)})
		}
		return rows
	}
	statuses := func(rep *Report) map[Status]int {
		c := map[Status]int{}
		for _, o := range rep.Outcomes {
			c[o.Status]++
			if o.Status == NotChecked && !strings.HasPrefix(o.Error, "interrupted") {
				t.Errorf("%s not checked, error %q: want it to say interrupted", o.URL, o.Error)
			}
		}
		return c
	}

	// The interrupt comes after every check started: those finish. Their
	// server says when both slow requests arrived, and the first check's
	// end (the quick one's) interrupts only then: a quick check may end
	// before the other workers took their rows.
	arrived := make(chan struct{}, 2)
	started := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/ok/") {
			_, _ = w.Write([]byte("ok"))
			return
		}
		arrived <- struct{}{}
		<-r.Context().Done()
	}))
	defer started.Close()
	var once sync.Once
	ctx, cancel := context.WithCancel(context.Background())
	rows := []Row{{Line: 1, Raw: started.URL + "/ok/a"}, {Line: 2, Raw: started.URL + "/slow?n=0"}, {Line: 3, Raw: started.URL + "/slow?n=1"}}
	rep := Run(ctx, &Input{Rows: rows}, Options{
		Module: httpModule(t, ""), Concurrency: 3, Timeout: 500 * time.Millisecond,
		Progress: func(int, int) { once.Do(func() { <-arrived; <-arrived; cancel() }) },
	})
	if c := statuses(rep); !rep.Interrupted || len(rep.Outcomes) != 3 || c[Active] != 1 || c[Error] != 2 {
		t.Errorf("all started: interrupted %v, %d outcomes %v; want interrupted, 1 active and 2 timed out", rep.Interrupted, len(rep.Outcomes), c)
	}

	// The interrupt comes while checks wait to start: those are listed.
	ctx, cancel = context.WithCancel(context.Background())
	rep = Run(ctx, &Input{Rows: urls(6)}, Options{
		Module: httpModule(t, ""), Concurrency: 1, Timeout: 500 * time.Millisecond,
		Progress: func(int, int) { cancel() },
	})
	if c := statuses(rep); !rep.Interrupted || len(rep.Outcomes) != 7 || c[Active] != 1 || c[NotChecked] < 5 || rep.Unique != 7 {
		t.Errorf("waiting: interrupted %v, %d outcomes %v; want interrupted, all 7 listed, at least 5 not checked", rep.Interrupted, len(rep.Outcomes), c)
	}

	// A second interrupt cuts the running checks short: listed too, not
	// as the errors they ended in.
	ctx, cancel = context.WithCancel(context.Background())
	abort, abortNow := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, func() { cancel(); abortNow() })
	rep = Run(ctx, &Input{Rows: urls(3)[1:]}, Options{
		Module: httpModule(t, ""), Concurrency: 3, Timeout: 10 * time.Second, Abort: abort,
	})
	if c := statuses(rep); !rep.Interrupted || len(rep.Outcomes) != 3 || c[NotChecked] != 3 {
		t.Errorf("cut short: interrupted %v, %d outcomes %v; want all 3 not checked", rep.Interrupted, len(rep.Outcomes), c)
	}
	for _, o := range rep.Outcomes {
		if !strings.Contains(o.Error, "cut short") {
			t.Errorf("%s: error %q, want it to say the check was cut short", o.URL, o.Error)
		}
	}
}

// TestRunTimeoutOption: Options.Timeout, when set (check --timeout), is
// each check's timeout, longer than the module's too; unset, the module's
// timeout applies.
func TestRunTimeoutOption(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(1500 * time.Millisecond)
	}))
	defer s.Close()
	m := httpModule(t, "    timeout: 1s\n")
	for _, tc := range []struct {
		timeout time.Duration
		want    Status
	}{{0, Error}, {5 * time.Second, Active}} {
		rep := Run(context.Background(), &Input{Rows: []Row{{Line: 1, Raw: s.URL}}}, Options{Module: m, Concurrency: 1, Timeout: tc.timeout})
		if o := rep.Outcomes[0]; o.Status != tc.want {
			t.Errorf("Timeout %v with a 1s module against a 1.5s server: %s (%s), want %s", tc.timeout, o.Status, o.Error, tc.want)
		}
	}
}
