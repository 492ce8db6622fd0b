package report

import (
	"bytes"
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
