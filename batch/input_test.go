package batch

import (
	"strings"
	"testing"
)

func TestReadInput(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		header []string
		raws   []string
		extra  [][]string
		err    string
	}{
		{name: "plain list with comments and blanks", in: "https://a.example\n\n# note\n  b.example  \r\n", raws: []string{"https://a.example", "b.example"}},
		{name: "BOM", in: "\xef\xbb\xbfhttps://a.example\n", raws: []string{"https://a.example"}},
		{name: "csv with extra columns", in: "name,URL,owner\nA,https://a.example,ann\nB,b.example,\"bob, jr\"\n",
			header: []string{"name", "owner"}, raws: []string{"https://a.example", "b.example"}, extra: [][]string{{"A", "ann"}, {"B", "bob, jr"}}},
		{name: "csv url only", in: "\xef\xbb\xbfurl\nhttps://a.example\n", raws: []string{"https://a.example"}},
		{name: "csv short row padded", in: "url,team\nhttps://a.example\n", header: []string{"team"}, raws: []string{"https://a.example"}, extra: [][]string{{""}}},
		{name: "csv too many fields is that row's error", in: "url,team\nhttps://a.example,x,y\n", header: []string{"team"}, raws: []string{"https://a.example"}, extra: [][]string{{"x"}}},
		{name: "header without url column", in: "name,link\nA,https://a.example\n", err: `the first line "name,link" looks like a CSV header without a url column`},
		{name: "semicolon header", in: "url;team\nhttps://a.example;x\n", err: "looks like a CSV header without a url column"},
		{name: "csv reserved column", in: "url,status\nhttps://a.example,x\n", err: `CSV column "status" clashes with an output column; rename it`},
		{name: "csv bad quoting", in: "url,team\n\"https://a.example,x\n", err: "CSV line"},
		{name: "not utf-8", in: "https://a.example/\xff\n", err: "input is not valid UTF-8 text"},
		{name: "too large", in: strings.Repeat("https://a.example/\n", 100), err: "input is larger than the limit of 1000 bytes"},
		{name: "too many urls", in: strings.Repeat("x.example\n", 20), err: "input has more than the limit of 10 URLs"},
		{name: "line too long", in: "https://a.example/" + strings.Repeat("a", 600) + "\n", err: "line 1 is longer than 500 bytes"},
	}
	lim := Limits{MaxBytes: 1000, MaxURLs: 10, MaxLineLen: 500}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in, err := ReadInput(strings.NewReader(tc.in), lim)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(in.ExtraHeader, "|") != strings.Join(tc.header, "|") {
				t.Errorf("header %q, want %q", in.ExtraHeader, tc.header)
			}
			if len(in.Rows) != len(tc.raws) {
				t.Fatalf("rows %+v, want %q", in.Rows, tc.raws)
			}
			for i, r := range in.Rows {
				if r.Raw != tc.raws[i] {
					t.Errorf("row %d raw %q, want %q", i, r.Raw, tc.raws[i])
				}
				if tc.extra != nil && strings.Join(r.Extra, "|") != strings.Join(tc.extra[i], "|") {
					t.Errorf("row %d extra %q, want %q", i, r.Extra, tc.extra[i])
				}
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{in: "https://Example.COM", want: "https://example.com/"},
		{in: "example.com/path?q=1#frag", want: "http://example.com/path?q=1"},
		{in: "HTTP://example.com:80/", want: "http://example.com/"},
		{in: "https://example.com:443/x", want: "https://example.com/x"},
		{in: "https://example.com:8443/x", want: "https://example.com:8443/x"},
		{in: "http://127.0.0.1:8080", want: "http://127.0.0.1:8080/"},
		{in: "http://[::1]:8080/", want: "http://[::1]:8080/"},
		{in: "https://bücher.example/", want: "https://xn--bcher-kva.example/"},
		{in: "https://example.com./", want: "https://example.com/"},
		{in: "ftp://example.com/", err: `unsupported scheme "ftp": want http or https`},
		{in: "http://", err: "URL has no host"},
		{in: "https://exa mple.com", err: "URL contains white space"},
		{in: "http://example.com:99999/", err: `invalid port "99999"`},
		{in: "http://user:pw@example.com/", err: "credentials"},
		{in: "http://[::1/", err: "malformed URL"},
		{in: "", err: "empty URL"},
		{in: "mailto:a@example.com", err: `unsupported scheme "mailto"`},
		{in: "localhost:8080/x", want: "http://localhost:8080/x"},
	}
	for _, tc := range tests {
		got, err := Normalize(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Normalize(%q) = %q, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
