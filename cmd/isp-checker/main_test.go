package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/isp-checker/isp-checker/config"
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

// writeFile writes content to the file name in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCommandLineErrors(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.yml", "modules:\n  m:\n    prober: http\n    htp: {}\n")
	good := writeFile(t, dir, "good.yml", "modules:\n  m:\n    prober: tcp\n")
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
		{[]string{"--config.file", good, "--config.check"}, 0, "config file " + good + " is ok: 1 module\n"},
		{[]string{"serve", "--config.check"}, 0, "embedded default config is ok: "},
		{[]string{"--version"}, 0, "isp-checker, version"},
		{[]string{"--log.level=loud"}, 2, "--log.level: unrecognized log level loud"},
		{[]string{"--log.format=yaml"}, 2, "--log.format: unrecognized log format yaml"},
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

// runInProcess runs the command line as main does, with its own streams.
func runInProcess(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errs bytes.Buffer
	code = run(args, strings.NewReader(stdin), &out, &errs)
	return code, out.String(), errs.String()
}

// flagValue is the value kingpin set for the flag name, global or of cmd.
func flagValue(m *kingpin.ApplicationModel, cmd, name string) string {
	flags := m.Flags
	for _, c := range m.Commands {
		if c.Name == cmd {
			flags = append(flags, c.Flags...)
		}
	}
	for _, f := range flags {
		if f.Name == name {
			return f.Value.String()
		}
	}
	return "no flag --" + name
}

// TestDefaultCommand: serve is the default command, so the command lines
// of systemd units, container images and the Helm chart (flags, no
// command) stay serve's, with every flag taken; a command's flags are its
// own, and any other command refuses them.
func TestDefaultCommand(t *testing.T) {
	const f, addr = "/etc/isp-checker/config.yml", "127.0.0.1:9799"
	for _, tc := range []struct {
		args []string
		cmd  string
		// flags are values the command line must have set.
		flags map[string]string
		err   string
	}{
		{args: nil, cmd: "serve", flags: map[string]string{"config.file": "", "web.listen-address": ":9799"}},
		{args: []string{"--config.file=" + f}, cmd: "serve", flags: map[string]string{"config.file": f}},
		{args: []string{"--config.file=" + f, "--web.listen-address=" + addr}, cmd: "serve",
			flags: map[string]string{"config.file": f, "web.listen-address": addr}},
		{args: []string{"--web.listen-address", addr, "--config.file", f}, cmd: "serve",
			flags: map[string]string{"config.file": f, "web.listen-address": addr}},
		{args: []string{"--config.file=" + f, "--web.listen-address=" + addr, "--log.level=debug", "--history.limit=5", "--speedtest.enable"}, cmd: "serve",
			flags: map[string]string{"log.level": "debug", "history.limit": "5", "speedtest.enable": "true"}},
		{args: []string{"--config.check"}, cmd: "serve", flags: map[string]string{"config.check": "true"}},
		{args: []string{"serve", "--web.listen-address=" + addr}, cmd: "serve", flags: map[string]string{"web.listen-address": addr}},
		{args: []string{"--config.file=" + f, "--log.level=warn", "serve", "--web.listen-address=" + addr}, cmd: "serve",
			flags: map[string]string{"config.file": f, "log.level": "warn", "web.listen-address": addr}},
		{args: []string{"--config.file=" + f, "check", "urls.txt"}, cmd: "check", flags: map[string]string{"config.file": f}},
		{args: []string{"check", "urls.txt", "--config.file=" + f, "--log.level=debug", "--probes.memory-budget=1MiB"}, cmd: "check",
			flags: map[string]string{"config.file": f, "log.level": "debug", "probes.memory-budget": "1MiB"}},
		{args: []string{"--log.level=debug", "run", "--target", "192.0.2.1", "--config.check"}, cmd: "run",
			flags: map[string]string{"log.level": "debug", "target": "192.0.2.1", "config.check": "true"}},

		{args: []string{"check", "urls.txt", "--web.listen-address=" + addr}, err: "unknown long flag '--web.listen-address'"},
		{args: []string{"check", "urls.txt", "--config.check"}, err: "unknown long flag '--config.check'"},
		{args: []string{"run", "--history.limit=5"}, err: "unknown long flag '--history.limit'"},
		{args: []string{"run", "--speedtest.enable"}, err: "unknown long flag '--speedtest.enable'"},
		{args: []string{"serve", "--target=192.0.2.1"}, err: "unknown long flag '--target'"},
		// A flag of serve's makes it the command: no other may follow.
		{args: []string{"--web.listen-address=" + addr, "check", "urls.txt"}, err: "unexpected check"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			app, _, _ := newApp(io.Discard, io.Discard)
			cmd, err := app.Parse(tc.args)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("command %q, error %v; want an error with %q", cmd, err, tc.err)
				}
				return
			}
			if err != nil || cmd != tc.cmd {
				t.Fatalf("command %q, error %v; want %s", cmd, err, tc.cmd)
			}
			m := app.Model()
			for name, want := range tc.flags {
				if got := flagValue(m, cmd, name); got != want {
					t.Errorf("--%s = %q, want %q", name, got, want)
				}
			}
		})
	}
}

// TestRefusedExitCodes: a command line a command refuses exits with that
// command's usage status (run's is 3, since its 2 means "down").
func TestRefusedExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"--no-such-flag"}, 2},
		{[]string{"check", "urls.txt", "--history.limit=5"}, 2},
		{[]string{"run", "--history.limit=5"}, runUsageExit},
		{[]string{"run", "--format=yaml"}, runUsageExit},
	} {
		code, stdout, stderr := runInProcess(t, "", tc.args...)
		if code != tc.code || stdout != "" || !strings.HasPrefix(stderr, "isp-checker: error: ") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d and the error", tc.args, code, stdout, stderr, tc.code)
		}
	}
}

// TestHelpListsOnlyTheCommandsFlags: each command's --help lists the
// global flags and its own, nothing else.
func TestHelpListsOnlyTheCommandsFlags(t *testing.T) {
	global := []string{"help", "version", "log.level", "log.format", "config.file", "probes.memory-budget"}
	want := map[string][]string{
		"":      nil,
		"check": {"module", "concurrency", "timeout", "format", "output"},
		"run": {"config.check", "target", "dns-server", "dns-name", "http-url", "gateway", "speed", "speed-rpm-url", "speed-url",
			"format", "output", "module", "timeout", "push", "push-instance", "verdict-exit-code"},
		"serve": {"config.check", "timeout-offset", "history.limit", "probes.max-concurrent", "throughput.max-concurrent",
			"speedtest.enable", "speedtest.max-bytes", "speedtest.rpm.max-duration", "speedtest.public-url", "web.systemd-socket", "web.listen-address", "web.config.file",
			"web.idle-timeout", "web.read-header-timeout", "log.prober", "config.enable-auto-reload", "config.auto-reload-interval", "web.external-url", "web.route-prefix"},
	}
	// "  -h, --[no-]help  …" or "      --log.level=info  …"; a wrapped
	// help text's lines are indented further.
	flagLine := regexp.MustCompile(`(?m)^  (?:-\w, |    )--(?:\[no-\])?([a-z][\w.-]*)`)
	for cmd, own := range want {
		args := []string{"--help"}
		if cmd != "" {
			args = []string{cmd, "--help"}
		}
		code, stdout, stderr := runInProcess(t, "", args...)
		var listed []string
		for _, m := range flagLine.FindAllStringSubmatch(stdout, -1) {
			listed = append(listed, m[1])
		}
		wanted := append(slices.Clone(global), own...)
		slices.Sort(listed)
		slices.Sort(wanted)
		if code != 0 || stderr != "" || !slices.Equal(listed, wanted) {
			t.Errorf("%v: exit %d, stderr %q, flags %v; want exit 0 and %v\n%s", args, code, stderr, listed, wanted, stdout)
		}
	}
}

// TestRunConfigCheck: run --config.check validates the module with the
// flags that change it and exits, before any check (and before --output is
// written): 0 when valid, run's usage status 3 when not.
func TestRunConfigCheck(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "c.yml", "modules:\n  home:\n    prober: isp\n    isp:\n      gateway: none\n      targets: [192.0.2.1]\n")
	bad := writeFile(t, dir, "bad.yml", "modules:\n  home:\n    prober: isp\n    isp:\n      thresholds: {loss_ratio: 5}\n")
	out := filepath.Join(dir, "report.json")
	for _, tc := range []struct {
		args         []string
		code         int
		stdout, want string
	}{
		{[]string{}, 0, "embedded default config is ok: module \"isp\"\n", ""},
		{[]string{"--config.file", cfg, "--module", "home", "--target", "192.0.2.2"}, 0, "config file " + cfg + " is ok: module \"home\"\n", ""},
		{[]string{"--config.file", cfg, "--module", "isp"}, runUsageExit, "", `--module: config file ` + cfg + ` has no module "isp" (modules: home)`},
		{[]string{"--config.file", bad, "--module", "home"}, runUsageExit, "", "loss_ratio 5 is out of range"},
		{[]string{"--config.file", filepath.Join(dir, "missing.yml")}, runUsageExit, "", "--config.file: reading config file: open " + filepath.Join(dir, "missing.yml") + ": no such file or directory"},
		{[]string{"--target", "http://192.0.2.1/"}, runUsageExit, "", `--target: "http://192.0.2.1/" is not a host name or IP address`},
		{[]string{"--speed"}, runUsageExit, "", "--speed needs a URL to download"},
		{[]string{"--push", "pushgateway:9091"}, runUsageExit, "", `--push: "pushgateway:9091" is not an http:// or https:// URL`},
	} {
		args := append([]string{"run", "--config.check", "--output", out}, tc.args...)
		code, stdout, stderr := runInProcess(t, "", args...)
		if code != tc.code || stdout != tc.stdout || (tc.want == "") != (stderr == "") || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d, stdout %q, stderr with %q", tc.args, code, stdout, stderr, tc.code, tc.stdout, tc.want)
		}
		if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%v: --config.check wrote %s (%v): it must stop before the diagnosis", tc.args, out, err)
		}
	}
}

// TestRunDefaultsAreTheEmbeddedModule: without --config.file, run uses
// the embedded configuration, as serve and check do; its isp module and
// target policy are the isp prober's defaults.
func TestRunDefaultsAreTheEmbeddedModule(t *testing.T) {
	cfg, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	if m := cfg.Modules["isp"]; m.Prober != "isp" || !reflect.DeepEqual(m.ISP, config.DefaultISPProbe()) {
		t.Errorf("embedded isp module %+v, want the defaults %+v", m.ISP, config.DefaultISPProbe())
	}
	if !reflect.DeepEqual(cfg.TargetPolicy, config.DefaultTargetPolicy()) {
		t.Errorf("embedded target policy %+v, want the default", cfg.TargetPolicy)
	}
}

// TestExitCode: one way for every command to end: nil is 0, an exitError
// its status (said, when it has an error), any other error 1.
func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
		said string
	}{
		{nil, 0, ""},
		{exitStatus(0), 0, ""},
		{exitStatus(4), 4, ""},
		{&exitError{code: 3, err: errors.New("--timeout: bad")}, 3, "isp-checker run: --timeout: bad\n"},
		{fmt.Errorf("writing the report: %w", errors.New("disk full")), 1, "isp-checker run: writing the report: disk full\n"},
	} {
		var b bytes.Buffer
		if code := exitCode(tc.err, "run", &b); code != tc.code || b.String() != tc.said {
			t.Errorf("exitCode(%v) = %d, said %q; want %d, %q", tc.err, code, b.String(), tc.code, tc.said)
		}
	}
}
