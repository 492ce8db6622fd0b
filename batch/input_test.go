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
		// invalid, lines and warning are checked when set.
		invalid []string
		lines   []int
		warning string
		err     string
	}{
		{name: "plain list with comments and blanks", in: "https://a.example\n\n# note\n  b.example  \r\n", raws: []string{"https://a.example", "b.example"}},
		{name: "BOM", in: "\xef\xbb\xbfhttps://a.example\n", raws: []string{"https://a.example"}},
		{name: "csv with extra columns", in: "name,URL,owner\nA,https://a.example,ann\nB,b.example,\"bob, jr\"\n",
			header: []string{"name", "owner"}, raws: []string{"https://a.example", "b.example"}, extra: [][]string{{"A", "ann"}, {"B", "bob, jr"}}},
		{name: "csv url only", in: "\xef\xbb\xbfurl\nhttps://a.example\n", raws: []string{"https://a.example"}},
		{name: "csv too few fields is that row's error", in: "url,team\nhttps://a.example\nhttps://b.example,y\n", header: []string{"team"},
			raws: []string{"https://a.example", "https://b.example"}, extra: [][]string{{""}, {"y"}}, invalid: []string{"CSV line 2 has 1 field, the header has 2", ""}},
		{name: "csv url beyond a short row", in: "team,url\nx\n", header: []string{"team"},
			raws: []string{""}, extra: [][]string{{"x"}}, invalid: []string{"CSV line 2 has 1 field, the header has 2"}},
		{name: "csv too many fields is that row's error", in: "url,team\nhttps://a.example,x,y\n", header: []string{"team"}, raws: []string{"https://a.example"}, extra: [][]string{{"x"}},
			invalid: []string{"CSV line 2 has 3 fields, the header has 2"}},
		{name: "csv bare quote is that row's error", in: "url,team\nhttps://a.example,x\nhttps://b.example/\"q,y\nhttps://c.example,z\n", header: []string{"team"},
			raws: []string{"https://a.example", `https://b.example/"q,y`, "https://c.example"}, extra: [][]string{{"x"}, {""}, {"z"}},
			invalid: []string{"", `CSV line 3: bare " in non-quoted-field`, ""}, lines: []int{2, 3, 4}},
		{name: "csv unterminated quote is that row's error", in: "url,team\n\"https://a.example,x\nhttps://b.example,\"bob, jr\"\nhttps://c.example,z\n", header: []string{"team"},
			raws: []string{`"https://a.example,x`, "https://b.example", "https://c.example"}, extra: [][]string{{""}, {"bob, jr"}, {"z"}},
			invalid: []string{`CSV line 2: extraneous or missing " in quoted-field`, "", ""}, lines: []int{2, 3, 4}},
		{name: "csv quote swallowing the next line is that row's error", in: "url,team\n\"https://a.example,x\nhttps://b.example,\"\nhttps://c.example,z\n", header: []string{"team"},
			raws: []string{`"https://a.example,x`, `https://b.example,"`, "https://c.example"}, extra: [][]string{{""}, {""}, {"z"}},
			invalid: []string{"CSV line 2: a quoted url runs over several lines", "CSV line 3: extraneous or missing", ""}, lines: []int{2, 3, 4}},
		{name: "csv multi-line note is fine", in: "url,note\nhttps://a.example,\"two\nlines\"\nhttps://b.example,x\n", header: []string{"note"},
			raws: []string{"https://a.example", "https://b.example"}, extra: [][]string{{"two\nlines"}, {"x"}}, lines: []int{2, 4}},
		{name: "csv blank lines keep line numbers", in: "url\n\nhttps://a.example\n\n\"x\n\nhttps://b.example\n", header: nil,
			raws: []string{"https://a.example", `"x`, "https://b.example"}, invalid: []string{"", "CSV line 5", ""}, lines: []int{3, 5, 7}},
		{name: "csv field too long is that row's error", in: "url,team\nhttps://a.example/" + strings.Repeat("a", 600) + ",x\nhttps://b.example,y\n", header: []string{"team"},
			raws: []string{"https://a.example/" + strings.Repeat("a", 82) + "…", "https://b.example"}, invalid: []string{"CSV line 2: a field is longer than 500 bytes", ""}},
		{name: "header-less csv read with a warning", in: "http://host.example/,label\nhttp://other.example/,label2\n", header: []string{"column2"},
			raws: []string{"http://host.example/", "http://other.example/"}, extra: [][]string{{"label"}, {"label2"}}, lines: []int{1, 2},
			warning: `line 1 has commas but the input has no header line naming a url column: reading it as CSV with the URLs in column 1 and the other columns named column2; to name the columns yourself, add a first line such as "url,column2"`},
		{name: "header-less csv with the url second", in: "# sites\nA,b.example\nB,c.example,extra\n", header: []string{"column1"},
			raws: []string{"b.example", "c.example"}, extra: [][]string{{"A"}, {"B"}}, invalid: []string{"", "CSV line 3 has 3 fields, the first line has 2"}, lines: []int{2, 3},
			warning: `URLs in column 2 and the other columns named column1; to name the columns yourself, add a first line such as "column1,url"`},
		{name: "one-word header", in: "website\nhttps://a.example\nb.example\n", raws: []string{"https://a.example", "b.example"}, lines: []int{2, 3}},
		{name: "one-word header with BOM, CRLF and spaces", in: "\xef\xbb\xbf Domain \r\na.example\r\n", raws: []string{"a.example"}, lines: []int{2}},
		{name: "one-word headers", in: "URLs\na.example\n", raws: []string{"a.example"}},
		{name: "two-word header", in: "web site\na.example\n", raws: []string{"a.example"}},
		{name: "a host name with a port is no header", in: "intranet:8080\na.example\n", raws: []string{"intranet:8080", "a.example"}},
		{name: "a URL is no header", in: "http://intranet/\na.example\n", raws: []string{"http://intranet/", "a.example"}},
		{name: "commas after a one-word header are that row's error", in: "website\nhttp://a.example/,x\n", raws: []string{"http://a.example/"},
			invalid: []string{"CSV line 2 has 2 fields, the header has 1"}},
		{name: "header without url column", in: "name,link\nA,https://a.example\n", err: `the first line "name,link" looks like a CSV header without a url column`},
		{name: "semicolon header", in: "url;team\nhttps://a.example;x\n", err: "looks like a CSV header without a url column"},
		{name: "csv url column twice", in: "url,URL\nhttps://a.example,https://b.example\n", err: `CSV header repeats the column "url": give one column the URLs`},
		{name: "csv column twice", in: "url,team,team\nhttps://a.example,x,y\n", err: `CSV header repeats the column "team"`},
		{name: "csv reserved column", in: "url,status\nhttps://a.example,x\n", err: `CSV column "status" clashes with an output column; rename it`},
		{name: "not utf-8", in: "https://a.example/\xff\n", err: "input is not valid UTF-8 text"},
		{name: "too large", in: strings.Repeat("https://a.example/\n", 100), err: "input is larger than the limit of 1000 bytes"},
		{name: "too many urls", in: strings.Repeat("x.example\n", 20), err: "input has more than the limit of 10 URLs"},
		{name: "list line too long is that row's error", in: "https://a.example/" + strings.Repeat("a", 600) + "\nb.example\n",
			raws: []string{"https://a.example/" + strings.Repeat("a", 82) + "…", "b.example"}, invalid: []string{"line 1 is longer than 500 bytes", ""}},
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
				if tc.invalid != nil && (tc.invalid[i] == "") != (r.Invalid == "") || tc.invalid != nil && !strings.Contains(r.Invalid, tc.invalid[i]) {
					t.Errorf("row %d invalid %q, want %q", i, r.Invalid, tc.invalid[i])
				}
				if tc.invalid == nil && r.Invalid != "" {
					t.Errorf("row %d invalid %q", i, r.Invalid)
				}
				if tc.lines != nil && r.Line != tc.lines[i] {
					t.Errorf("row %d line %d, want %d", i, r.Line, tc.lines[i])
				}
			}
			if w := strings.Join(in.Warnings, "\n"); tc.warning == "" && w != "" || !strings.Contains(w, tc.warning) {
				t.Errorf("warnings %q, want %q", in.Warnings, tc.warning)
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
		{in: "http://./", err: "URL has no host"},
		{in: "http://../", err: "invalid host name"},
		{in: "http://xn--/", err: "invalid host name"},
		{in: "http://a..b.example/", err: "invalid host name"},
		{in: "http://.example.com/", err: "invalid host name"},
		{in: "http://\uff0eexample.com/", err: "invalid host name"},
		{in: "http://%80%FF.example/", err: "not UTF-8"},
		{in: "http://%C3%BC.example/", want: "http://xn--tda.example/"},
		{in: "http://127.1/", err: "neither an IP address nor a host name"},
		{in: "http://0x7f.0.0.1:8080/", err: "neither an IP address nor a host name"},
		{in: "http://1.2.3.4.5/", err: "neither an IP address nor a host name"},
		{in: "http://www.example.123abc/", want: "http://www.example.123abc/"},
		{in: "http:x.example", err: "URL has no host"},
		{in: "http://[::ffff:127.0.0.1]/", want: "http://127.0.0.1/"},
		{in: "http://example.com/ü?q=ü", want: "http://example.com/%C3%BC?q=ü"},
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
