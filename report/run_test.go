package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/isp-checker/isp-checker/diagnose"
	dt "github.com/isp-checker/isp-checker/internal/diagnosetest"
	"github.com/isp-checker/isp-checker/internal/schematest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./report -run TestRunGolden -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (go test ./report -run TestRunGolden -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestRunGolden renders synthetic diagnoses (fixed values, so the output is
// deterministic) as text, with and without colour, and as JSON.
func TestRunGolden(t *testing.T) {
	for _, name := range dt.Scenarios {
		t.Run(name, func(t *testing.T) {
			r := dt.Scenario(name)
			var text, js bytes.Buffer
			if err := WriteRun(&text, "text", r, TextOptions{}); err != nil {
				t.Fatal(err)
			}
			golden(t, "run-"+name+".txt", text.Bytes())
			if err := WriteRun(&js, "json", r, TextOptions{}); err != nil {
				t.Fatal(err)
			}
			golden(t, "run-"+name+".json", js.Bytes())
			if strings.Contains(text.String(), "\033[") {
				t.Error("plain text has escape codes")
			}
		})
	}
	var color bytes.Buffer
	if err := WriteRun(&color, "text", dt.Scenario("remote"), TextOptions{Color: true}); err != nil {
		t.Fatal(err)
	}
	golden(t, "run-remote-color.txt", color.Bytes())
	if err := WriteRun(&color, "yaml", dt.Scenario("healthy"), TextOptions{}); err == nil {
		t.Error("format yaml accepted")
	}
}

// TestRunTextVerdictLine: the text ends with the one-line verdict.
func TestRunTextVerdictLine(t *testing.T) {
	for name, want := range map[string]string{
		"healthy": "Verdict: HEALTHY — no fault found. Health score 0.95 (A).",
		"lan":     "Verdict: DEGRADED — the fault is in your local network (LAN: Wi-Fi, cables, router). Health score 0.00 (F).",
		"dns":     "Verdict: DOWN — the fault is DNS (name resolution). Health score 0.00 (F).",
		"unknown": "Verdict: UNKNOWN — the connection could not be measured (see the first reason under Why). Health score not measured.",
		"noroute": "Verdict: DOWN — the fault is in your local network (LAN: Wi-Fi, cables, router). Health score 0.00 (F).",
	} {
		var b bytes.Buffer
		if err := WriteRun(&b, "text", dt.Scenario(name), TextOptions{}); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(b.String()), "\n")
		if got := lines[len(lines)-1]; got != want {
			t.Errorf("%s: last line %q, want %q", name, got, want)
		}
	}
	// An interrupted run says so, not that the line could not be measured.
	r := dt.Scenario("healthy")
	r.Interrupted = true
	diagnose.Diagnose(r)
	var b bytes.Buffer
	if err := WriteRun(&b, "text", r, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if got, want := lines[len(lines)-1], "Verdict: UNKNOWN — the run was interrupted before its checks finished, so nothing is judged. Health score not measured."; got != want {
		t.Errorf("interrupted: last line %q, want %q", got, want)
	}
}

// TestRunTextKeepsTheFix: error text is wrapped, never cut, so the fix at
// its end survives in the table and under "Why"; and a value that was not
// measured is never printed as a zero.
func TestRunTextKeepsTheFix(t *testing.T) {
	var b bytes.Buffer
	if err := WriteRun(&b, "text", dt.Scenario("unknown"), TextOptions{}); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	flat := strings.Join(strings.Fields(text), " ")
	for _, fix := range []string{
		"allow it with `sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"`; or use protocol: tcp", // the gateway row's error, wrapped
		"raw sockets need CAP_NET_RAW",
	} {
		if !strings.Contains(flat, fix) {
			t.Errorf("the text lacks %q:\n%s", fix, text)
		}
	}
	why := text[strings.Index(text, "Why:\n")+5:]
	first := why[:strings.Index(why, "\n  - ")] // the first reason, with its continuation lines
	if f := strings.Join(strings.Fields(first), " "); !strings.Contains(f, "`setcap cap_net_raw+ep /path/to/isp-checker`") ||
		!strings.Contains(f, "`sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"`") {
		t.Errorf("the first reason lacks the fix: %q", f)
	}
	if line := first[:strings.Index(first, "\n")]; !strings.Contains(line, "cannot ping: no permission — run as root, widen net.ipv4.ping_group_range or grant CAP_NET_RAW") {
		t.Errorf("the first line under Why does not name the fix: %q", line)
	}
	for _, line := range strings.Split(text, "\n") {
		if len([]rune(line)) > 130 {
			t.Errorf("line of %d characters (wrap it): %q", len([]rune(line)), line)
		}
	}
	if strings.Contains(text, "…") {
		t.Errorf("the text cuts something short:\n%s", text)
	}
	for _, zero := range []string{" 0 ms", "0.00 ", " 0 %"} {
		if strings.Contains(text, zero) {
			t.Errorf("nothing was pinged, yet the text shows %q:\n%s", zero, text)
		}
	}
	for _, d := range []string{"loss", "latency", "jitter"} {
		if !regexp.MustCompile(`(?m)^` + d + `\s+-\s+-\s+-\s`).MatchString(text) {
			t.Errorf("dimension %s is not shown as unmeasured:\n%s", d, text)
		}
	}
}

// TestRunJSONSchema validates every scenario's report against
// docs/report.schema.json, and checks the top-level fields by hand too.
func TestRunJSONSchema(t *testing.T) {
	data, err := os.ReadFile("../docs/report.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatalf("docs/report.schema.json: %v", err)
	}
	for _, name := range dt.Scenarios {
		r := dt.Scenario(name)
		var b bytes.Buffer
		if err := WriteRun(&b, "json", r, TextOptions{}); err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		for _, e := range schematest.Validate(schema, doc) {
			t.Errorf("%s: %s", name, e)
		}
		m := doc.(map[string]any)
		score, scored := m["score"]
		if m["schema_version"] != float64(RunSchemaVersion) || m["verdict"] != r.Verdict || m["fault"] != r.Fault ||
			m["exit_code"] != float64(diagnose.ExitCode(r.Verdict)) || scored != (r.Score != nil) || scored && score != *r.Score {
			t.Errorf("%s: top level %v", name, m)
		}
	}
	// The validator itself finds what is wrong.
	bad := map[string]any{"schema_version": 1.0, "verdict": "fine", "score": 1.5, "evidence": []any{}}
	errs := strings.Join(schematest.Validate(schema, bad), "\n")
	for _, want := range []string{"$.schema_version: 1 is not one of", "$.verdict: \"fine\" is not one of", "$.score: 1.5 is above the maximum 1",
		"$.evidence: 0 items, fewer than 1", "$: required property \"fault\" is missing"} {
		if !strings.Contains(errs, want) {
			t.Errorf("validator missed %q in:\n%s", want, errs)
		}
	}
	// An unknown verdict has no score; a dimension not measured has no
	// value: a zero there would read as a measurement.
	var unknown map[string]any
	var b bytes.Buffer
	if err := WriteRun(&b, "json", dt.Scenario("unknown"), TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b.Bytes(), &unknown); err != nil {
		t.Fatal(err)
	}
	unknown["score"] = 0.0
	unknown["dimensions"].(map[string]any)["loss"].(map[string]any)["value"] = 0.0
	errs = strings.Join(schematest.Validate(schema, unknown), "\n")
	for _, want := range []string{"$.score: must be absent", "$.dimensions.loss.value: must be absent"} {
		if !strings.Contains(errs, want) {
			t.Errorf("validator missed %q in:\n%s", want, errs)
		}
	}
}

// TestRunTextIntegrityRcode: the DNS row says what the resolver answered
// the name that cannot exist, not NXDOMAIN for every answer without an
// address.
func TestRunTextIntegrityRcode(t *testing.T) {
	for rcode, want := range map[string]string{
		"REFUSED":  "; REFUSED for a name that cannot exist",
		"SERVFAIL": "; SERVFAIL for a name that cannot exist",
		"NOERROR":  "; NOERROR with no records for a name that cannot exist",
		"NXDOMAIN": "; NXDOMAIN for a name that cannot exist",
	} {
		r := dt.Scenario("healthy")
		r.Checks.DNS[1].Integrity.Rcode = rcode
		var b bytes.Buffer
		if err := WriteRun(&b, "text", r, TextOptions{}); err != nil {
			t.Fatal(err)
		}
		flat := strings.Join(strings.Fields(b.String()), " ")
		row := flat[strings.Index(flat, "dns "+dt.DNS2):]
		if !strings.HasPrefix(row[:strings.Index(row, "http ")], "dns "+dt.DNS2+" ok") || !strings.Contains(row[:strings.Index(row, "http ")], want) {
			t.Errorf("%s: the dns row of %s does not say %q:\n%s", rcode, dt.DNS2, want, b.String())
		}
	}
}

// TestPingDetailCounts: a count of one is worded in the singular.
func TestPingDetailCounts(t *testing.T) {
	for sent, want := range map[int]string{1: "no reply to 1 echo request", 3: "no reply to 3 echo requests"} {
		if got := pingDetail(dt.Ping(dt.Target1, sent, 0, 0, 0), 0); got != want {
			t.Errorf("pingDetail of %d unanswered = %q, want %q", sent, got, want)
		}
	}
}

// TestRunTextScoreNeverRoundsUp: the text shows a score to two decimals
// without rounding it up, so it never reads higher than the JSON holds
// (0.996 is 0.99, not a perfect 1.00) and agrees with its grade at the
// bands' edges (0.749 is C: 0.74, not 0.75).
func TestRunTextScoreNeverRoundsUp(t *testing.T) {
	for _, tc := range []struct {
		score float64
		want  string
	}{{0.996, "0.99 (A)"}, {0.992, "0.99 (A)"}, {0.749, "0.74 (C)"}, {0.29, "0.29 (D)"}, {1, "1.00 (A)"}} {
		r := dt.Scenario("healthy")
		s := tc.score
		r.Dimensions.Loss.Score, r.Dimensions.Loss.Grade = &s, diagnose.Grade(s)
		r.Score, r.Grade = &s, diagnose.Grade(s)
		var b bytes.Buffer
		if err := WriteRun(&b, "text", r, TextOptions{}); err != nil {
			t.Fatal(err)
		}
		score, _, _ := strings.Cut(tc.want, " ")
		if out := b.String(); !strings.Contains(out, "Health score "+tc.want+".") || !regexp.MustCompile(`(?m)^loss +`+regexp.QuoteMeta(score)+` `).MatchString(out) {
			t.Errorf("score %v: want %q in the verdict and the loss row:\n%s", tc.score, tc.want, out)
		}
	}
}
