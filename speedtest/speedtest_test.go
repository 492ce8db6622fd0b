package speedtest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newServer(t *testing.T, o Options) (*httptest.Server, *Handler, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	o.Registerer = reg
	h := New(o)
	mux := http.NewServeMux()
	for p, r := range h.Routes() {
		mux.Handle(p, r)
	}
	s := httptest.NewServer(mux)
	t.Cleanup(http.DefaultClient.CloseIdleConnections) // runs after s.Close
	t.Cleanup(s.Close)
	return s, h, reg
}

func requests(h *Handler, dir, result string) float64 {
	return testutil.ToFloat64(h.requests.WithLabelValues(dir, result))
}

func sentBytes(h *Handler, dir string) float64 {
	return testutil.ToFloat64(h.bytes.WithLabelValues(dir))
}

func TestDownload(t *testing.T) {
	s, h, _ := newServer(t, Options{MaxBytes: 3 << 20})
	for _, n := range []int{0, 1, 1000, 1 << 20, 3 << 20} {
		resp, err := http.Get(s.URL + DownloadPath + "?bytes=" + strconv.Itoa(n))
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || len(body) != n || resp.ContentLength != int64(n) {
			t.Errorf("bytes=%d: status %d, %d bytes (Content-Length %d), err %v", n, resp.StatusCode, len(body), resp.ContentLength, err)
		}
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
			t.Errorf("Cache-Control %q", cc)
		}
	}
	// No bytes parameter: the cap.
	resp, err := http.Get(s.URL + DownloadPath)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if n != 3<<20 {
		t.Errorf("default size %d, want the cap %d", n, 3<<20)
	}
	// The handler counts a chunk after writing it, so the client can hold
	// the whole body a moment before the last count: wait for the six.
	waitFor(t, "six downloads counted", func() bool { return requests(h, "download", ResultSuccess) >= 6 })
	want := float64(1 + 1000 + 1<<20 + 3<<20 + 3<<20)
	if got := sentBytes(h, "download"); got != want {
		t.Errorf("isp_checker_speedtest_bytes_total{direction=download} = %g, want %g", got, want)
	}
	if got := requests(h, "download", ResultSuccess); got != 6 {
		t.Errorf("successful downloads %g, want 6", got)
	}
	// HEAD: headers only.
	resp, err = http.Head(s.URL + DownloadPath + "?bytes=5")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != 5 {
		t.Errorf("HEAD: %d, Content-Length %d", resp.StatusCode, resp.ContentLength)
	}
}

// The data must not compress: a proxy or VPN that compresses would
// otherwise inflate the measured rate.
func TestDownloadIncompressible(t *testing.T) {
	var distinct [256]bool
	for _, b := range payload()[:4096] {
		distinct[b] = true
	}
	n := 0
	for _, d := range distinct {
		if d {
			n++
		}
	}
	if n < 250 {
		t.Errorf("payload uses %d distinct byte values in 4 KiB; want random data", n)
	}
}

func TestDownloadBadRequests(t *testing.T) {
	s, h, _ := newServer(t, Options{MaxBytes: 1000})
	for _, q := range []string{"?bytes=1001", "?bytes=-1", "?bytes=abc", "?bytes=1e3", "?bytes=99999999999999999999"} {
		resp, err := http.Get(s.URL + DownloadPath + q)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "want a whole number from 0 to 1000") {
			t.Errorf("%s: status %d body %q", q, resp.StatusCode, body)
		}
	}
	resp, err := http.Post(s.URL+DownloadPath, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST download: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	if got := requests(h, "download", ResultBadRequest); got != 6 {
		t.Errorf("bad download requests counted %g, want 6", got)
	}
	if got := sentBytes(h, "download"); got != 0 {
		t.Errorf("bytes sent %g, want 0", got)
	}
}

func TestUpload(t *testing.T) {
	s, h, _ := newServer(t, Options{MaxBytes: 2 << 20})
	for _, n := range []int{0, 10, 2 << 20} {
		resp, err := http.Post(s.URL+UploadPath, "application/octet-stream", bytes.NewReader(make([]byte, n)))
		if err != nil {
			t.Fatal(err)
		}
		var res UploadResult
		err = json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || res.Bytes != int64(n) {
			t.Errorf("upload %d: status %d, result %+v, err %v", n, resp.StatusCode, res, err)
		}
	}
	// Chunked (no Content-Length), with PUT.
	req, _ := http.NewRequest(http.MethodPut, s.URL+UploadPath, io.LimitReader(zeros{}, 12345))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var res UploadResult
	_ = json.NewDecoder(resp.Body).Decode(&res)
	resp.Body.Close()
	if resp.StatusCode != 200 || res.Bytes != 12345 {
		t.Errorf("chunked PUT: %d, %+v", resp.StatusCode, res)
	}
	if got, want := sentBytes(h, "upload"), float64(10+2<<20+12345); got != want {
		t.Errorf("isp_checker_speedtest_bytes_total{direction=upload} = %g, want %g", got, want)
	}
	if got := requests(h, "upload", ResultSuccess); got != 4 {
		t.Errorf("successful uploads %g, want 4", got)
	}
}

type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}

func TestUploadCap(t *testing.T) {
	s, h, _ := newServer(t, Options{MaxBytes: 1 << 20})
	// A Content-Length above the cap is refused before the body is read.
	resp, err := http.Post(s.URL+UploadPath, "application/octet-stream", bytes.NewReader(make([]byte, 1<<20+1)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "above the limit of 1048576 bytes") {
		t.Errorf("large Content-Length: %d %q", resp.StatusCode, body)
	}
	if got := sentBytes(h, "upload"); got != 0 {
		t.Errorf("read %g bytes of a refused upload", got)
	}
	// A chunked body is cut at the cap.
	req, _ := http.NewRequest(http.MethodPost, s.URL+UploadPath, io.LimitReader(zeros{}, 3<<20))
	resp, err = http.DefaultClient.Do(req)
	if err == nil {
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("chunked upload over the cap: %d %q", resp.StatusCode, body)
		}
	} // else: the server closed the connection while the client was still sending; also a refusal.
	if got := sentBytes(h, "upload"); got > 1<<20 {
		t.Errorf("read %g bytes, above the cap", got)
	}
	if got := requests(h, "upload", ResultTooLarge); got != 2 {
		t.Errorf("too_large counted %g, want 2", got)
	}
	resp, err = http.Get(s.URL + UploadPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST, PUT" {
		t.Errorf("GET upload: %d", resp.StatusCode)
	}
}

// Past MaxConcurrent transfers, requests get 503 at once; an aborted
// download is counted with the bytes it sent.
func TestBusyAndAborted(t *testing.T) {
	s, h, _ := newServer(t, Options{MaxBytes: 1 << 30, MaxConcurrent: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+DownloadPath, nil)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{DownloadPath + "?bytes=10", UploadPath} {
		var r *http.Response
		var err error
		if path == UploadPath {
			r, err = http.Post(s.URL+path, "text/plain", strings.NewReader("x"))
		} else {
			r, err = http.Get(s.URL + path)
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "busy") {
			t.Errorf("%s while busy: %d %q", path, r.StatusCode, body)
		}
	}
	cancel()
	resp.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for requests(h, "download", ResultAborted) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("aborted download not counted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := sentBytes(h, "download"); got < 1<<20 || got >= 1<<30 {
		t.Errorf("aborted download counted %g bytes", got)
	}
	if requests(h, "download", ResultBusy) != 1 || requests(h, "upload", ResultBusy) != 1 {
		t.Error("busy refusals not counted")
	}
}

func TestMetricsRegistered(t *testing.T) {
	_, _, reg := newServer(t, Options{})
	n, err := testutil.GatherAndCount(reg, "isp_checker_speedtest_bytes_total", "isp_checker_speedtest_requests_total", "isp_checker_speedtest_rpm_requests_total")
	if err != nil {
		t.Fatal(err)
	}
	// 2 byte counters; 5 results × 2 directions, less download/too_large;
	// config and small × (success, bad_request), large and upload × 5 results.
	if n != 2+9+4+10 {
		t.Errorf("%d series, want 25 (all initialised at 0)", n)
	}
	lint, err := testutil.GatherAndLint(reg)
	if err != nil || len(lint) > 0 {
		t.Errorf("metric lint: %v %v", lint, err)
	}
	if New(Options{}).MaxBytes() != DefaultMaxBytes {
		t.Error("default cap")
	}
}
