package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/internal/netlab"
)

var binary string

func TestMain(m *testing.M) {
	netlab.Isolate() // lab tests: see the netlab package documentation
	dir, err := os.MkdirTemp("", "isp-checker-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "isp-checker")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building isp-checker: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func runBinary(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, string(out)
}

func TestCommandLineErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(bad, []byte("modules:\n  m:\n    prober: http\n    htp: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.yml")
	if err := os.WriteFile(good, []byte("modules:\n  m:\n    prober: tcp\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--no-such-flag"}, 2, "unknown long flag '--no-such-flag'"},
		{[]string{"--timeout-offset=abc"}, 2, `--timeout-offset: "abc" is not a number`},
		{[]string{"--timeout-offset=NaN"}, 2, `--timeout-offset: "NaN" is not a number`},
		{[]string{"--speedtest.max-bytes=lots"}, 2, `--speedtest.max-bytes: "lots" is not a positive size`},
		{[]string{"--speedtest.max-bytes=0"}, 2, `--speedtest.max-bytes: "0" is not a positive size`},
		{[]string{"--speedtest.rpm.max-duration=0"}, 2, `--speedtest.rpm.max-duration: "0" is not a positive duration`},
		{[]string{"--speedtest.public-url=speed.example.net"}, 2, `--speedtest.public-url: public URL "speed.example.net": want http:// or https:// and a host`},
		{[]string{"--history.limit=1.5"}, 2, `--history.limit: "1.5" is not a whole number`},
		{[]string{"--config.file", bad, "--config.check"}, 1, `line 4: unknown field "htp" in module`},
		{[]string{"--config.file", filepath.Join(dir, "missing.yml"), "--config.check"}, 1, "no such file or directory"},
		{[]string{"--config.file", good, "--config.check"}, 0, "is ok: 1 modules"},
		{[]string{"serve", "--config.check"}, 0, "embedded default is ok"},
		{[]string{"--version"}, 0, "isp-checker, version"},
		{[]string{"--log.level=loud"}, 2, "unrecognized log level loud"},
		{[]string{"--timeout-offset=-1"}, 2, "--timeout-offset: -1 is below the minimum 0"},
		{[]string{"--web.listen-address=256.0.0.1:http-nope"}, 1, "error serving"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out := runBinary(t, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, output:\n%s\nwant exit %d and %q", code, out, tc.code, tc.want)
			}
		})
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startServer runs the binary as systemd units and containers do and waits
// until it answers.
func startServer(t *testing.T, args ...string) string {
	t.Helper()
	return startServerAs(t, nil, args...)
}

// startServerAs is startServer with a command prefix (setpriv …).
func startServerAs(t *testing.T, prefix []string, args ...string) string {
	t.Helper()
	addr := freePort(t)
	argv := append(append(prefix, binary), append(args, "--web.listen-address="+addr)...)
	cmd := exec.Command(argv[0], argv[1:]...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			t.Log(s.Text())
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/-/healthy")
		if err == nil {
			resp.Body.Close()
			return "http://" + addr
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("server did not start")
	return ""
}

func fetch(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServeWithoutCommandAndSIGHUP(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yml")
	if err := os.WriteFile(path, []byte("modules:\n  first:\n    prober: tcp\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url := startServer(t, "--config.file="+path)
	if code, body := fetch(t, url+"/config"); code != 200 || !strings.Contains(body, "first:") {
		t.Fatalf("/config: %d %s", code, body)
	}
	if code, _ := fetch(t, url+"/probe?module=second&target=x"); code != 400 {
		t.Errorf("unknown module: %d", code)
	}
	if err := os.WriteFile(path, []byte("modules:\n  second:\n    prober: tcp\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, body := fetch(t, url+"/config"); !strings.Contains(body, "second:") {
		t.Errorf("reload did not take: %s", body)
	}
	_, metrics := fetch(t, url+"/metrics")
	if !strings.Contains(metrics, "isp_checker_config_last_reload_successful 1") {
		t.Error("reload gauge not 1")
	}
}

func TestServeExplicitEmbeddedDefault(t *testing.T) {
	url := startServer(t, "serve")
	code, body := fetch(t, url+"/")
	if code != 200 || !strings.Contains(body, "http_2xx") || !strings.Contains(body, "icmp") {
		t.Errorf("landing page: %d\n%s", code, body)
	}
	if code, body := fetch(t, url+"/probe?module=http_2xx"); code != 400 || !strings.Contains(body, "Target parameter is missing") {
		t.Errorf("missing target: %d %s", code, body)
	}
}
