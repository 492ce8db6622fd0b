package batch

import (
	"bytes"
	"testing"
)

// FuzzNormalize: a URL that normalises does so to a fixed point (checking
// the normalised URL again gives the same URL), and one that does not says
// why.
//
// Run: go test ./batch/ -run '^$' -fuzz FuzzNormalize -fuzztime 60s
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"example.com", "HTTPS://Example.COM:443/a#b", "http://bücher.example/", "ftp://x", "http://[::1]:80",
		"http://u:p@x/", "mailto:a@b", "http://x:0/", "http://%41/", " http://x/ "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		norm, err := Normalize(raw)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		again, err := Normalize(norm)
		if err != nil {
			t.Fatalf("Normalize(%q) = %q, which does not normalise: %v", raw, norm, err)
		}
		if again != norm {
			t.Fatalf("Normalize is not idempotent: %q -> %q -> %q", raw, norm, again)
		}
	})
}

// FuzzReadInput reads arbitrary check input (a list or a CSV): it never
// panics, every row has a line number inside the input, and the limits
// hold.
func FuzzReadInput(f *testing.F) {
	f.Add([]byte("https://example.com\nexample.org\n\n# comment\n"))
	f.Add([]byte("url,owner\nhttps://a.example,me\n\"https://b.example\",\"x,y\"\n"))
	f.Add([]byte("\xef\xbb\xbfurl\r\nhttp://x\r\n"))
	f.Add([]byte("url,a\n\"unterminated\n"))
	lim := Limits{MaxBytes: 1 << 16, MaxURLs: 100, MaxLineLen: 1 << 10}
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := ReadInput(bytes.NewReader(data), lim)
		if err != nil {
			return
		}
		lines := bytes.Count(data, []byte("\n")) + 1
		if len(in.Rows) > lim.MaxURLs {
			t.Fatalf("%d rows past the limit of %d", len(in.Rows), lim.MaxURLs)
		}
		for _, r := range in.Rows {
			if r.Line < 1 || r.Line > lines {
				t.Fatalf("row at line %d of a %d-line input", r.Line, lines)
			}
		}
	})
}
