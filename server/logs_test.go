package server

import (
	"net/url"
	"strings"
	"testing"
)

// TestLogsByTargetAndModule: /logs?target=T[&module=M] shows the latest
// probe of T (of module M) in the history, as blackbox's /logs does; id=
// still works, and the combinations blackbox refuses are refused.
func TestLogsByTargetAndModule(t *testing.T) {
	s := newTestServer(t, 0)
	releaseBlocked(t)
	probe := func(module, target, hostname string) {
		t.Helper()
		q := url.Values{"module": {module}, "target": {target}, "hostname": {hostname}}
		if code, body := get(t, s.URL+"/probe?"+q.Encode(), nil); code != 200 {
			t.Fatalf("probe %s %s: %d %s", module, target, code, body)
		}
	}
	probe("echo", "a.test", "first")                     // id 0
	probe("echo", "a.test", "second")                    // id 1
	probe("block", "a.test", "")                         // id 2
	probe("echo", "b.test", "third")                     // id 3
	probe("echo", "https://u:hunter2@c.test/", "fourth") // id 4, shown without its password

	logs := func(query string) (int, string) {
		t.Helper()
		return get(t, s.URL+"/logs?"+query, nil)
	}
	tests := []struct {
		query      string
		code       int
		want, lack string
	}{
		{"target=a.test", 200, "test probe done", "hostname=second"},
		{"target=a.test&module=echo", 200, "hostname=second", "hostname=first"},
		{"target=a.test&module=block", 200, "test probe done", "hostname="},
		{"target=b.test&module=echo", 200, "hostname=third", ""},
		{"target=" + url.QueryEscape("https://u:hunter2@c.test/"), 200, "hostname=fourth", "hunter2"},
		{"id=0", 200, "hostname=first", ""},
		{"id=1", 200, "hostname=second", ""},
		{"target=a.test&module=nope", 404, "No probe of target \"a.test\" with module \"nope\"", ""},
		{"target=nowhere.test", 404, "No probe of target \"nowhere.test\"", ""},
		{"id=99", 404, "not found", ""},
		{"id=x", 400, "Invalid probe id", ""},
		{"id=0&target=a.test", 400, "either id or target", ""},
		{"module=echo", 400, "module only works with target", ""},
		{"", 400, "id or target", ""},
	}
	for _, tc := range tests {
		code, body := logs(tc.query)
		if code != tc.code || !strings.Contains(body, tc.want) || (tc.lack != "" && strings.Contains(body, tc.lack)) {
			t.Errorf("/logs?%s: %d %q; want %d with %q and without %q", tc.query, code, body, tc.code, tc.want, tc.lack)
		}
	}
}
