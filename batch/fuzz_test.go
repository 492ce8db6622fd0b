package batch

import (
	"bytes"
	"net/url"
	"strings"
	"testing"
)

// FuzzNormalize: a URL that normalises is an http(s) URL with a host, no
// credentials and no fragment, and normalising it again changes nothing.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		"https://Example.COM", "example.com/path?q=1#frag", "http://[::1]:8080/", "https://bücher.example/",
		"http://./", "http://%80%FF.example/", "http://%C3%BC.example/", "http://xn--/", "http://127.1/",
		"http://\uff0eexample.com/", "localhost:8080/x", "http://example.com/ü?q=ü", "http://[::ffff:127.0.0.1]/",
		"http://a.example/%2F", "HTTP://A.EXAMPLE:80", "http://exa\u00admple.com./",
		"ftp://x", "http://u:p@x/", "mailto:a@b", "http://x:0/", "http://%41/", " http://x/ ", "0..",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		norm, err := Normalize(raw)
		if err != nil {
			if norm != "" || err.Error() == "" {
				t.Fatalf("Normalize(%q) = %q with error %q", raw, norm, err)
			}
			return
		}
		u, err := url.Parse(norm)
		if err != nil {
			t.Fatalf("Normalize(%q) = %q, which does not parse: %v", raw, norm, err)
		}
		host := u.Hostname()
		if host == "" || strings.HasPrefix(host, ".") || strings.HasSuffix(host, ".") || strings.Contains(host, "..") {
			t.Fatalf("Normalize(%q) = %q: host %q", raw, norm, host)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || u.Fragment != "" || u.Opaque != "" {
			t.Fatalf("Normalize(%q) = %q: scheme %q, user %v, fragment %q, opaque %q", raw, norm, u.Scheme, u.User, u.Fragment, u.Opaque)
		}
		again, err := Normalize(norm)
		if err != nil || again != norm {
			t.Fatalf("Normalize(%q) = %q, but Normalize(%q) = %q, %v", raw, norm, norm, again, err)
		}
	})
}

// FuzzReadInput: whatever the bytes, ReadInput does not panic, fails only
// for a reason about the input as a whole, and otherwise returns rows in
// input order, each on a real line, with one value per extra column and a
// URL on one line.
func FuzzReadInput(f *testing.F) {
	for _, s := range []string{
		"https://a.example\n\n# note\n  b.example  \r\n",
		"name,URL,owner\nA,https://a.example,ann\nB,b.example,\"bob, jr\"\n",
		"url,team\n\"https://a.example,x\nhttps://b.example,\"\nhttps://c.example,z\n",
		"url,team\nhttps://a.example,x\nhttps://b.example/\"q,y\nhttps://c.example\n",
		"http://host.example/,label\nhttp://other.example/,label2,x\n",
		"url,note\nhttps://a.example,\"two\nlines\"\n",
		"\xef\xbb\xbfurl\r\nhttps://a.example\r\n",
		"website\nhttps://a.example\nhttp://b.example/,x\n",
	} {
		f.Add([]byte(s))
	}
	lim := Limits{MaxBytes: 1 << 16, MaxURLs: 1000, MaxLineLen: 200}
	wholeInput := []string{"input is larger", "not valid UTF-8", "looks like a CSV header", "repeats the column", "clashes with an output column", "more than the limit"}
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := ReadInput(bytes.NewReader(data), lim)
		if err != nil {
			for _, w := range wholeInput {
				if strings.Contains(err.Error(), w) {
					return
				}
			}
			t.Fatalf("error about no input as a whole: %v", err)
		}
		lines := bytes.Count(data, []byte("\n")) + 1
		last := 0
		for _, r := range in.Rows {
			if r.Line < 1 || r.Line > lines || r.Line <= last {
				t.Fatalf("row on line %d after line %d, input has %d lines", r.Line, last, lines)
			}
			last = r.Line
			if len(r.Extra) != len(in.ExtraHeader) {
				t.Fatalf("line %d: %d extra values for columns %q", r.Line, len(r.Extra), in.ExtraHeader)
			}
			if strings.Contains(r.Raw, "\n") {
				t.Fatalf("line %d: URL %q spans lines", r.Line, r.Raw)
			}
		}
	})
}
