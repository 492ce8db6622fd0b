package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"
)

type checkDoc struct {
	SchemaVersion int `json:"schema_version"`
	Summary       struct {
		Unique, Checked, Active, Inactive, Error int
		NotChecked                               int  `json:"not_checked"`
		Duplicates                               int  `json:"duplicates_dropped"`
		Interrupted                              bool `json:"interrupted"`
	} `json:"summary"`
	Results []struct {
		URL        string            `json:"url"`
		Status     string            `json:"status"`
		HTTPStatus int               `json:"http_status"`
		Error      string            `json:"error"`
		Columns    map[string]string `json:"columns"`
	} `json:"results"`
}

func checkSite(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/ok/", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("/missing/", http.NotFound)
	mux.HandleFunc("/slow/", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(20 * time.Second):
		case <-r.Context().Done():
		}
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func runCheck(t *testing.T, stdin []byte, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"check"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// TestCheckDoneCriterion: 1,000 live URLs, 1,000 that answer 404, 500
// refused, 250 malformed and 250 duplicates give 2,750 rows with exactly
// those statuses, in JSON and in CSV.
func TestCheckDoneCriterion(t *testing.T) {
	s := checkSite(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := l.Addr().String()
	l.Close()

	var b strings.Builder
	b.WriteString("\xef\xbb\xbfurl,group\n")
	for i := range 1000 {
		fmt.Fprintf(&b, "%s/ok/%d,live\n", s.URL, i)
	}
	for i := range 1000 {
		fmt.Fprintf(&b, "%s/missing/%d,notfound\n", s.URL, i)
	}
	for i := range 500 {
		fmt.Fprintf(&b, "http://%s/r/%d,refused\n", refused, i)
	}
	for i := range 250 {
		fmt.Fprintf(&b, "ftp://files.example/%d,malformed\n", i)
	}
	for i := range 250 { // the same live URLs, written differently
		fmt.Fprintf(&b, "%s/ok/%d#again,dup\n", strings.Replace(s.URL, "http://", "HTTP://", 1), i)
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "urls.csv")
	if err := os.WriteFile(in, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]int{
		"live": {"active": 1000}, "notfound": {"inactive": 1000}, "refused": {"error": 500}, "malformed": {"error": 250},
	}

	jsonOut := filepath.Join(dir, "out.json")
	code, _, stderr := runCheck(t, nil, in, "--format=json", "--output="+jsonOut, "--concurrency=32", "--timeout=5s")
	if code != 1 {
		t.Errorf("exit %d, want 1 (not all active); stderr: %s", code, stderr)
	}
	if !strings.Contains(stderr, "1000 active, 1000 inactive, 750 error; 250 duplicates dropped") {
		t.Errorf("summary on stderr: %s", stderr)
	}
	data, err := os.ReadFile(jsonOut)
	if err != nil {
		t.Fatal(err)
	}
	var doc checkDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Results) != 2750 || doc.Summary.Duplicates != 250 || doc.SchemaVersion != 1 {
		t.Fatalf("json: %d rows, %d duplicates, schema %d", len(doc.Results), doc.Summary.Duplicates, doc.SchemaVersion)
	}
	got := map[string]map[string]int{}
	for _, r := range doc.Results {
		g := r.Columns["group"]
		if got[g] == nil {
			got[g] = map[string]int{}
		}
		got[g][r.Status]++
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("json statuses by group: %v, want %v", got, want)
	}

	csvOut := filepath.Join(dir, "out.csv")
	if code, _, stderr := runCheck(t, nil, in, "--output="+csvOut, "--concurrency=32", "--timeout=5s"); code != 1 {
		t.Errorf("csv run exit %d: %s", code, stderr)
	}
	f, err := os.Open(csvOut)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2751 {
		t.Fatalf("csv has %d rows, want header + 2750", len(recs))
	}
	head := strings.Join(recs[0], ",")
	if !strings.HasPrefix(head, "url,group,status,http_status,response_time_seconds,checked_at,final_url,cert_expiry,error") {
		t.Errorf("csv header: %s", head)
	}
	got = map[string]map[string]int{}
	for _, r := range recs[1:] {
		if got[r[1]] == nil {
			got[r[1]] = map[string]int{}
		}
		got[r[1]][r[2]]++
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("csv statuses by group: %v, want %v", got, want)
	}
}

func TestCheckFormatsAndStdin(t *testing.T) {
	s := checkSite(t)
	list := []byte(fmt.Sprintf("# two sites\n%s/ok/a\n%s/ok/b\n", s.URL, s.URL))
	code, out, stderr := runCheck(t, list, "-", "--format=text")
	if code != 0 || !strings.Contains(out, "STATUS") || strings.Count(out, "active") != 2 {
		t.Errorf("text from stdin: exit %d\n%s\n%s", code, out, stderr)
	}
	xlsx := filepath.Join(t.TempDir(), "out.xlsx")
	if code, _, stderr := runCheck(t, list, "-", "--format=xlsx", "-o", xlsx); code != 0 {
		t.Fatalf("xlsx: exit %d %s", code, stderr)
	}
	wb, err := excelize.OpenFile(xlsx)
	if err != nil {
		t.Fatal(err)
	}
	defer wb.Close()
	rows, err := wb.GetRows("Checks")
	if err != nil || len(rows) != 3 || rows[0][0] != "url" || rows[1][1] != "active" || rows[1][2] != "200" {
		t.Errorf("xlsx rows: %v %v", rows, err)
	}
}

func TestCheckUsageErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.txt")
	_ = os.WriteFile(empty, []byte("# nothing\n"), 0o600)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"check"}, "required argument 'file' not provided"},
		{[]string{"check", filepath.Join(dir, "nope.txt")}, "no such file or directory"},
		{[]string{"check", empty}, "has no URLs"},
		{[]string{"check", empty, "--module=nope"}, `--module: embedded default config has no module "nope" (modules: `},
		{[]string{"check", empty, "--module=icmp"}, `module "icmp" uses the icmp prober; check needs an http module`},
		{[]string{"check", empty, "--format=pdf"}, `--format: "pdf" is not one of csv, json, xlsx, text`},
		{[]string{"check", empty, "--concurrency=0"}, "--concurrency: 0 is below the minimum 1"},
		{[]string{"check", empty, "--timeout=-1s"}, `--timeout: "-1s" is not a positive duration`},
		{[]string{"check", empty, "--web.listen-address=:9799"}, "unknown long flag '--web.listen-address'"},
	}
	for _, tc := range tests {
		code, out := runBinary(t, tc.args...)
		if code != 2 || !strings.Contains(out, tc.want) {
			t.Errorf("%v: exit %d %q, want 2 and %q", tc.args, code, out, tc.want)
		}
	}
}

// TestCheckInterrupted: SIGINT stops new checks, and the report still holds
// the checks that finished.
func TestCheckInterrupted(t *testing.T) {
	s := checkSite(t)
	var b strings.Builder
	for i := range 5 {
		fmt.Fprintf(&b, "%s/ok/%d\n", s.URL, i)
	}
	for i := range 200 {
		fmt.Fprintf(&b, "%s/slow/%d\n", s.URL, i)
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "urls.txt")
	_ = os.WriteFile(in, []byte(b.String()), 0o600)
	out := filepath.Join(dir, "out.json")
	cmd := exec.Command(binary, "check", in, "--format=json", "-o", out, "--concurrency=2", "--timeout=2s")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	_ = cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("exit: %v, want 1; %s", err, stderr.String())
	}
	var doc checkDoc
	data, _ := os.ReadFile(out)
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("report not written: %v (%s)", err, stderr.String())
	}
	if sm := doc.Summary; !sm.Interrupted || sm.Active != 5 || len(doc.Results) != 205 || sm.NotChecked == 0 || sm.Checked+sm.NotChecked != 205 {
		t.Errorf("interrupted report: %+v with %d rows; want all 205 listed, those never checked as not_checked", doc.Summary, len(doc.Results))
	}
	if !regexp.MustCompile(`interrupted: the report lists \d+ URLs as not_checked`).MatchString(stderr.String()) {
		t.Errorf("stderr does not say interrupted and how many were not checked: %s", stderr.String())
	}
}

// TestCheckSecondInterrupt: a second Ctrl-C cuts the running checks short
// instead of waiting for their timeout, and the report is still written.
func TestCheckSecondInterrupt(t *testing.T) {
	s := checkSite(t)
	var b strings.Builder
	for i := range 50 {
		fmt.Fprintf(&b, "%s/slow/%d\n", s.URL, i)
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "urls.txt")
	_ = os.WriteFile(in, []byte(b.String()), 0o600)
	out := filepath.Join(dir, "out.json")
	cmd := exec.Command(binary, "check", in, "--format=json", "-o", out, "--concurrency=4", "--timeout=60s")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	_ = cmd.Process.Signal(syscall.SIGINT)
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	_ = cmd.Process.Signal(syscall.SIGINT)
	_ = cmd.Wait()
	if waited := time.Since(start); waited > 15*time.Second {
		t.Errorf("second interrupt took %v; the checks' timeout is 60s", waited)
	}
	var doc checkDoc
	data, _ := os.ReadFile(out)
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("report not written: %v (%s)", err, stderr.String())
	}
	if !doc.Summary.Interrupted || len(doc.Results) != 50 || doc.Summary.NotChecked != 50 || doc.Summary.Checked != 0 {
		t.Errorf("want an interrupted report with no finished checks and all 50 listed: %+v, %d rows", doc.Summary, len(doc.Results))
	}
	for _, r := range doc.Results {
		if r.Status != "not_checked" || !strings.HasPrefix(r.Error, "interrupted") {
			t.Errorf("%s: status %q error %q; want not_checked, interrupted", r.URL, r.Status, r.Error)
		}
	}
}

// TestCheckInterruptAfterEveryStart: an interrupt that comes once every
// check has started (a short list) still marks the report interrupted,
// in the JSON and on stderr, and exits 1.
func TestCheckInterruptAfterEveryStart(t *testing.T) {
	s := checkSite(t)
	list := fmt.Sprintf("%s/ok/a\n%s/slow/1\n%s/slow/2\n", s.URL, s.URL, s.URL)
	dir := t.TempDir()
	in := filepath.Join(dir, "urls.txt")
	_ = os.WriteFile(in, []byte(list), 0o600)
	cmd := exec.Command(binary, "check", in, "--format=json", "--timeout=3s")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	_ = cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("exit: %v, want 1; %s", err, stderr.String())
	}
	var doc checkDoc
	if err := json.Unmarshal(stdout.Bytes(), &doc); err != nil {
		t.Fatalf("report: %v (%s)", err, stderr.String())
	}
	if !doc.Summary.Interrupted || len(doc.Results) != 3 || doc.Summary.Active != 1 {
		t.Errorf("report: %+v with %d rows; want interrupted, 3 rows, 1 active", doc.Summary, len(doc.Results))
	}
	if !strings.Contains(stderr.String(), "interrupted: every check had started, and finished") || !strings.Contains(stderr.String(), "1 active") {
		t.Errorf("stderr does not say interrupted:\n%s", stderr.String())
	}
}

// TestProgressLine: rates below a few URLs a second are shown with their
// fraction, not rounded to 0/s while URLs complete.
func TestProgressLine(t *testing.T) {
	tests := []struct {
		done, total int
		elapsed     time.Duration
		want        string
	}{
		{3, 100, 10 * time.Second, "3/100  0.3/s  ETA 5m23s"},
		{1, 10, 40 * time.Second, "1/10  0.025/s  ETA 6m0s"},
		{15, 20, 10 * time.Second, "15/20  1.5/s  ETA 3s"},
		{4000, 10000, time.Second, "4000/10000  4000/s  ETA 2s"},
		{0, 10, time.Second, "0/10  0/s  ETA ?"},
	}
	for _, tc := range tests {
		got := progressLine(tc.done, tc.total, tc.elapsed)
		if !strings.Contains(got, tc.want) {
			t.Errorf("progressLine(%d, %d, %v) = %q, want it to contain %q", tc.done, tc.total, tc.elapsed, got, tc.want)
		}
	}
}

// TestCheckMalformedRows: a bad quote, an unterminated quote and a row with
// too few fields are each that row's error, and every other row is still
// checked; a CSV without a header is read as CSV, with a warning.
func TestCheckMalformedRows(t *testing.T) {
	s := checkSite(t)
	dir := t.TempDir()
	type row struct {
		url, status, err, column string
		line                     int
	}
	tests := []struct {
		name, in, warning string
		want              []row
	}{
		{
			name: "bad quoting and short rows",
			in:   fmt.Sprintf("url,team\n%[1]s/ok/1,a\n%[1]s/ok/2\"x,b\n%[1]s/ok/3\n\"%[1]s/ok/4,d\n%[1]s/missing/5,e\n", s.URL),
			want: []row{
				{s.URL + "/ok/1", "active", "", "a", 2},
				{s.URL + `/ok/2"x,b`, "error", `CSV line 3: bare " in non-quoted-field`, "", 3},
				{s.URL + "/ok/3", "error", "CSV line 4 has 1 field, the header has 2", "", 4},
				{`"` + s.URL + "/ok/4,d", "error", `CSV line 5: extraneous or missing " in quoted-field`, "", 5},
				{s.URL + "/missing/5", "inactive", "status code", "e", 6},
			},
		},
		{
			name:    "no header",
			in:      fmt.Sprintf("%[1]s/ok/a,label\n%[1]s/missing/b,label2\n", s.URL),
			warning: "line 1 has commas but the input has no header line naming a url column: reading it as CSV with the URLs in column 1",
			want: []row{
				{s.URL + "/ok/a", "active", "", "label", 1},
				{s.URL + "/missing/b", "inactive", "status code", "label2", 2},
			},
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := filepath.Join(dir, fmt.Sprintf("in%d.csv", i))
			if err := os.WriteFile(in, []byte(tc.in), 0o600); err != nil {
				t.Fatal(err)
			}
			code, out, stderr := runCheck(t, nil, in, "--format=json", "--timeout=5s")
			if code != 1 {
				t.Errorf("exit %d, want 1; stderr: %s", code, stderr)
			}
			if tc.warning != "" && !strings.Contains(stderr, "warning: "+in+": "+tc.warning) {
				t.Errorf("stderr lacks the warning %q:\n%s", tc.warning, stderr)
			}
			var doc struct {
				Results []struct {
					URL, Status, Error string
					Line               int
					Columns            map[string]string
				}
			}
			if err := json.Unmarshal([]byte(out), &doc); err != nil {
				t.Fatalf("no report: %v\n%s\n%s", err, out, stderr)
			}
			if len(doc.Results) != len(tc.want) {
				t.Fatalf("%d results, want %d: %+v", len(doc.Results), len(tc.want), doc.Results)
			}
			for j, w := range tc.want {
				g := doc.Results[j]
				col := g.Columns["team"] + g.Columns["column2"]
				if g.URL != w.url || g.Status != w.status || g.Line != w.line || col != w.column ||
					(w.err == "") != (g.Error == "") || !strings.Contains(g.Error, w.err) {
					t.Errorf("result %d: %+v, want %+v", j, g, w)
				}
			}
		})
	}
}

// TestCheckInProcess: check reads the URLs from the stdin it is given and
// writes to the stdout and stderr it is given; counts are worded right.
func TestCheckInProcess(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	defer s.Close()
	for _, tc := range []struct {
		urls    []string
		rows    int
		summary []string
	}{
		{[]string{s.URL + "/a", s.URL + "/a#again"}, 1, []string{"checked 1 of 1 unique URL in ", "; 1 duplicate dropped\n"}},
		{[]string{s.URL + "/a", s.URL + "/b"}, 2, []string{"checked 2 of 2 unique URLs in ", "; 0 duplicates dropped\n"}},
	} {
		code, stdout, stderr := runInProcess(t, strings.Join(tc.urls, "\n"), "check", "-", "--format=csv")
		if code != 0 || strings.Count(stdout, ",active,200,") != tc.rows || !strings.Contains(stderr, tc.summary[0]) || !strings.Contains(stderr, tc.summary[1]) {
			t.Errorf("%v: exit %d\n%s\n%s", tc.urls, code, stdout, stderr)
		}
	}
}

// TestCheckDebugLogsEachKeyOnce: with --log.level=debug, the probes' log
// lines (named by the URL they check) name no key twice.
func TestCheckDebugLogsEachKeyOnce(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	defer s.Close()
	_, _, stderr := runInProcess(t, s.URL+"/\n", "check", "-", "--log.level=debug", "--log.format=json")
	lines := 0
	for _, line := range strings.Split(stderr, "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		lines++
		dec := json.NewDecoder(strings.NewReader(line))
		seen := map[string]bool{}
		_, _ = dec.Token() // {
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				t.Fatalf("%v in %s", err, line)
			}
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("%v in %s", err, line)
			}
			if seen[k.(string)] {
				t.Errorf("%s twice: %s", k, line)
			}
			seen[k.(string)] = true
		}
	}
	if lines < 3 || !strings.Contains(stderr, `"target":"`+s.URL+`/"`) || !strings.Contains(stderr, `"host":"127.0.0.1"`) {
		t.Errorf("%d log lines; want the probe's, with the host it resolved:\n%s", lines, stderr)
	}
}
