package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/internal/syncbuf"
)

// startServerLog is startServer, keeping the server's stderr.
func startServerLog(t *testing.T, args ...string) (string, *syncbuf.Buffer) {
	t.Helper()
	addr := freePort(t)
	cmd := exec.Command(binary, append(args, "--web.listen-address="+addr)...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := &syncbuf.Buffer{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			fmt.Fprintln(logs, s.Text())
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		<-done
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("server stderr:\n%s", logs)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := noRedirect.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			return "http://" + addr, logs
		}
		select {
		case <-done:
			t.Fatal("server exited")
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatal("server did not start")
	return "", nil
}

// noRedirect does not follow the root's redirect to the external URL.
var noRedirect = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// eventually polls cond every 50 ms for up to 10 s (a loaded CI machine
// may take long; the condition, not the time, is what is checked).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServeBlackboxMainFlags: a command line written for blackbox_exporter's
// main branch starts the exporter, which serves under the external URL's
// path (the route prefix's default) or the route prefix.
func TestServeBlackboxMainFlags(t *testing.T) {
	path := writeFile(t, t.TempDir(), "c.yml", "modules:\n  tcp_connect:\n    prober: tcp\n")
	for _, tc := range []struct {
		args         []string
		prefix, home string // home: where / redirects to
	}{
		{[]string{"--web.external-url=http://127.0.0.1:9/blackbox"}, "/blackbox/", "http://127.0.0.1:9/blackbox/"},
		{[]string{"--web.external-url=http://127.0.0.1:9/blackbox/", "--web.route-prefix=/"}, "/", ""},
		{[]string{"--web.route-prefix=bb"}, "/bb/", "/bb/"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			args := append([]string{"--config.file=" + path, "--log.prober=warn", "--config.enable-auto-reload", "--config.auto-reload-interval=30"}, tc.args...)
			url, _ := startServerLog(t, args...)
			for _, p := range []string{"-/healthy", "metrics", "config", ""} {
				if code, body := fetch(t, url+tc.prefix+p); code != 200 {
					t.Errorf("%s%s: %d %s", tc.prefix, p, code, body)
				}
			}
			if code, body := fetch(t, url+tc.prefix+"probe?module=tcp_connect"); code != 400 || !strings.Contains(body, "Target parameter is missing") {
				t.Errorf("%sprobe: %d %s", tc.prefix, code, body)
			}
			if tc.prefix != "/" {
				if code, _ := fetch(t, url+"/metrics"); code != 404 {
					t.Errorf("/metrics under prefix %s: %d, want 404", tc.prefix, code)
				}
				resp, err := noRedirect.Get(url + "/")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != tc.home {
					t.Errorf("/: %d to %q, want 302 to %q", resp.StatusCode, resp.Header.Get("Location"), tc.home)
				}
			}
		})
	}
}

// TestServeAutoReload: with --config.enable-auto-reload the config file,
// rewritten while the exporter runs, is loaded; a broken rewrite keeps the
// old config and sets both reload gauges (isp_checker_ and blackbox's
// names) to 0, a fixed one back to 1.
func TestServeAutoReload(t *testing.T) {
	for _, interval := range []string{"1", "200ms"} { // blackbox's seconds, and a duration
		t.Run(interval, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yml")
			write := func(s string) {
				t.Helper()
				// Written aside and renamed, as editors and config managers do:
				// the exporter never reads a half-written file.
				if err := os.WriteFile(path+".new", []byte(s), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(path+".new", path); err != nil {
					t.Fatal(err)
				}
			}
			write("modules:\n  first:\n    prober: tcp\n")
			url, logs := startServerLog(t, "--config.file="+path, "--config.enable-auto-reload", "--config.auto-reload-interval="+interval)
			config := func() string { _, b := fetch(t, url+"/config"); return b }
			metrics := func() string { _, b := fetch(t, url+"/metrics"); return b }
			if !strings.Contains(config(), "first:") {
				t.Fatalf("/config: %s", config())
			}
			write("modules:\n  second:\n    prober: tcp\n")
			eventually(t, "the rewritten config was not loaded", func() bool { return strings.Contains(config(), "second:") })
			for _, g := range []string{"isp_checker_config_last_reload_successful 1", "blackbox_exporter_config_last_reload_successful 1"} {
				if !strings.Contains(metrics(), g) {
					t.Errorf("metrics lack %q", g)
				}
			}
			write("modules:\n  third:\n    prober: nope\n")
			eventually(t, "a broken config did not set blackbox_exporter_config_last_reload_successful to 0", func() bool {
				return strings.Contains(metrics(), "blackbox_exporter_config_last_reload_successful 0")
			})
			if m := metrics(); !strings.Contains(m, "isp_checker_config_last_reload_successful 0") {
				t.Errorf("isp_checker_config_last_reload_successful is not 0 either")
			}
			if c := config(); !strings.Contains(c, "second:") {
				t.Errorf("a broken file replaced the config: %s", c)
			}
			write("modules:\n  fourth:\n    prober: tcp\n")
			eventually(t, "the fixed config was not loaded", func() bool {
				return strings.Contains(config(), "fourth:") && strings.Contains(metrics(), "blackbox_exporter_config_last_reload_successful 1")
			})
			// The log reaches us through a pipe, maybe after the metric.
			reloads := func() int { return strings.Count(logs.String(), "config file changed, reloaded it") }
			eventually(t, "the second reload was not logged", func() bool { return reloads() >= 2 })
			if n := reloads(); n != 2 {
				t.Errorf("%d reloads logged, want 2 (second, fourth):\n%s", n, logs)
			}
		})
	}
}

// TestServeLogProber: --log.prober sets the level of the probes' lines on
// stderr, whatever --log.level says; debug=true shows them all.
func TestServeLogProber(t *testing.T) {
	path := writeFile(t, t.TempDir(), "c.yml", "modules:\n  tcp_connect:\n    prober: tcp\n    timeout: 5s\n")
	closed := freePort(t) // nothing listens there: the probe fails
	for _, tc := range []struct {
		args       []string
		want, lack []string
	}{
		{nil, []string{`level=ERROR`, `module=tcp_connect target=` + closed}, []string{`msg="Dialing TCP"`}},
		{[]string{"--log.level=debug"}, []string{`level=ERROR`}, []string{`msg="Dialing TCP"`}},
		{[]string{"--log.prober=debug"}, []string{`level=INFO`, `msg="Dialing TCP"`, `level=ERROR`}, nil},
		{[]string{"--log.prober=error", "--log.level=warn"}, []string{`level=ERROR`}, []string{`msg="Dialing TCP"`}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			url, logs := startServerLog(t, append([]string{"--config.file=" + path}, tc.args...)...)
			_, debug := fetch(t, url+"/probe?module=tcp_connect&debug=true&target="+closed)
			if !strings.Contains(debug, `msg="Dialing TCP"`) || !strings.Contains(debug, "probe_success 0") {
				t.Fatalf("debug=true lacks a line or the failure:\n%s", debug)
			}
			// The lines reach stderr through a pipe, after the answer
			// may have: wait for every wanted one. Each case wants the
			// ERROR line, the probe's last, so a line it must lack would
			// be there by then.
			have := func() bool {
				got := logs.String()
				for _, w := range tc.want {
					if !strings.Contains(got, w) {
						return false
					}
				}
				return true
			}
			eventually(t, fmt.Sprintf("stderr lacks one of %q (the server's stderr follows)", tc.want), have)
			got := logs.String()
			for _, l := range tc.lack {
				if strings.Contains(got, l) {
					t.Errorf("stderr has %q:\n%s", l, got)
				}
			}
		})
	}
}

// TestServeBlackboxFlagErrors: each of these flags' bad values is refused
// with a message naming the flag.
func TestServeBlackboxFlagErrors(t *testing.T) {
	for _, tc := range []struct{ arg, want string }{
		{"--log.prober=loud", "--log.prober: unrecognized log level loud"},
		{"--config.auto-reload-interval=soon", `--config.auto-reload-interval: "soon" is not a number of seconds`},
		{"--config.auto-reload-interval=0", `--config.auto-reload-interval: "0" is not positive`},
		{"--config.auto-reload-interval=-5s", `--config.auto-reload-interval: "-5s" is not positive`},
		{"--web.external-url=probes.example.net/bb", `--web.external-url: external URL "probes.example.net/bb": want http:// or https://`},
		{"--web.external-url='http://h/'", "--web.external-url: external URL 'http://h/': remove the quotes"},
		{"--web.external-url=http://127.0.0.1:9/a%20b", "--web.external-url: the path of http://127.0.0.1:9/a%20b cannot be a route prefix: route prefix \"/a b\": ' ' cannot be in it"},
		{"--web.route-prefix=/a b", `--web.route-prefix: route prefix "/a b": ' ' cannot be in it`},
		{"--web.route-prefix=/{x}", `--web.route-prefix: route prefix "/{x}": '{' cannot be in it`},
	} {
		t.Run(tc.arg, func(t *testing.T) {
			code, out := runBinary(t, tc.arg)
			if code != 2 || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, output:\n%s\nwant exit 2 and %q", code, out, tc.want)
			}
		})
	}
	// Auto-reload watches a file: the embedded default is none.
	code, out := runBinary(t, "--config.enable-auto-reload")
	if code != 2 || !strings.Contains(out, "--config.enable-auto-reload needs --config.file") {
		t.Errorf("auto-reload without a file: exit %d, output:\n%s", code, out)
	}
}
