package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/batch"
)

// TestCheckTextEscapesControlCharacters: a malformed URL is printed as
// written, so its control characters (a terminal escape, a bidi override,
// a tab that would shift the columns) must reach the terminal escaped.
func TestCheckTextEscapesControlCharacters(t *testing.T) {
	raw := "http://a.example/\x1b[2J\x1b]0;pwned\x07\u202egnp.exe\tx"
	rep := &batch.Report{Unique: 1, Outcomes: []batch.Outcome{{
		URL: raw, InputURL: raw, Line: 3, Status: batch.Error, CheckedAt: time.Now(),
		Error: "malformed URL: net/url: invalid control character in URL \u009b \xff",
	}}}
	var b bytes.Buffer
	if err := WriteCheck(&b, "text", rep); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, r := range out {
		if r != '\n' && (r < ' ' || r == 0x7f || r >= 0x80 && r < 0xa0 || r == '\u202e') {
			t.Fatalf("raw control character %U in text output:\n%q", r, out)
		}
	}
	for _, want := range []string{`http://a.example/\x1b[2J\x1b]0;pwned\a\u202egnp.exe\tx`, `in URL \u009b \xff`} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %s:\n%s", want, out)
		}
	}
}

// TestCheckTextShowsWholeError: the end of an error often names the fix,
// so the text table wraps a long one onto continuation lines in its
// DETAIL column instead of cutting it, and the columns stay aligned.
func TestCheckTextShowsWholeError(t *testing.T) {
	long := "Get \"https://a.example/\": tls: failed to verify certificate: x509: certificate signed by unknown authority — add the CA to the system trust store or pass --insecure-skip-verify"
	rep := &batch.Report{Unique: 2, Outcomes: []batch.Outcome{
		{URL: "https://a.example/", Status: batch.Error, CheckedAt: time.Now(), Error: long},
		{URL: "https://b.example/", Status: batch.Active, HTTPStatus: 200, CheckedAt: time.Now()},
	}}
	var b bytes.Buffer
	if err := WriteCheck(&b, "text", rep); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	col := strings.Index(lines[0], "DETAIL")
	var detail []string
	for _, l := range lines[1:] {
		if strings.HasPrefix(l, "active") {
			break
		}
		if len(l) <= col {
			t.Fatalf("line %q ends before the DETAIL column (%d):\n%s", l, col, out)
		}
		if l != lines[1] && strings.TrimSpace(l[:col]) != "" {
			t.Errorf("continuation line %q has text outside DETAIL:\n%s", l, out)
		}
		detail = append(detail, strings.TrimSpace(l[col:]))
	}
	if got := strings.Join(detail, " "); got != long {
		t.Errorf("DETAIL reads\n%q\nwant the whole error\n%q\n%s", got, long, out)
	}
	for _, l := range lines {
		if n := len([]rune(l)) - col; n > detailWidth {
			t.Errorf("a DETAIL of %d runes is not wrapped at %d: %q", n, detailWidth, l)
		}
	}
}

// TestCheckUncheckedRow: a row that was never checked (a malformed URL)
// has no status code and no check time in the JSON, and empty cells in
// the CSV, whose columns stay those of every other row.
func TestCheckUncheckedRow(t *testing.T) {
	rep := &batch.Report{Unique: 2, Outcomes: []batch.Outcome{
		{URL: "ftp://a.example/", InputURL: "ftp://a.example/", Line: 2, Status: batch.Error, Error: `unsupported scheme "ftp"`},
		{URL: "http://b.example/", InputURL: "b.example", Line: 3, Status: batch.Active, HTTPStatus: 200, CheckedAt: time.Date(2026, 12, 1, 13, 0, 0, 0, time.UTC)},
	}}
	var j bytes.Buffer
	if err := WriteCheck(&j, "json", rep); err != nil {
		t.Fatal(err)
	}
	var doc struct{ Results []map[string]any }
	if err := json.Unmarshal(j.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Results) != 2 {
		t.Fatalf("%d results:\n%s", len(doc.Results), j.String())
	}
	for _, k := range []string{"http_status", "checked_at"} {
		if v, ok := doc.Results[0][k]; ok {
			t.Errorf("unchecked row has %s %v:\n%s", k, v, j.String())
		}
		if _, ok := doc.Results[1][k]; !ok {
			t.Errorf("checked row lacks %s:\n%s", k, j.String())
		}
	}
	var c bytes.Buffer
	if err := WriteCheck(&c, "csv", rep); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&c).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || len(recs[1]) != len(recs[0]) || len(recs[2]) != len(recs[0]) {
		t.Fatalf("CSV rows of uneven width:\n%v", recs)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	if recs[1][col["http_status"]] != "" || recs[1][col["checked_at"]] != "" || recs[2][col["http_status"]] != "200" {
		t.Errorf("CSV http_status/checked_at: %v", recs)
	}
}
