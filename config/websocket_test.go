package config

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestWebsocketGoodFixture(t *testing.T) {
	c, err := LoadFile(filepath.Join("testdata", "websocket-good.yml"))
	if err != nil {
		t.Fatal(err)
	}
	ws := c.Modules["ws_everything"].Websocket
	if ws.IPProtocol != "ip4" || ws.IPProtocolFallback || len(ws.QueryResponse) != 2 || ws.QueryResponse[0].Expect.Regexp == nil {
		t.Errorf("options not applied: %+v", ws)
	}
	hc := ws.HTTPClientConfig
	if hc.BasicAuth == nil || hc.BasicAuth.PasswordFile != filepath.Join("testdata", "ws-password.txt") {
		t.Errorf("basic_auth password_file not made relative to the config: %+v", hc.BasicAuth)
	}
	if hc.TLSConfig.ServerName != "chat.example.com" || hc.ProxyURL.URL == nil || hc.HTTPHeaders == nil {
		t.Errorf("http_config not applied: %+v", hc)
	}
	h := ws.Headers.Headers["X-Api-Key"]
	if len(h.Values) != 1 || len(h.Secrets) != 1 || len(h.Files) != 1 || h.Files[0] != filepath.Join("testdata", "ws-header.txt") {
		t.Errorf("headers not applied, or files not relative to the config: %+v", h)
	}
	// Without a websocket: section, the defaults apply (blackbox's).
	if plain := c.Modules["ws_plain"].Websocket; !plain.IPProtocolFallback || plain.HTTPClientConfig.FollowRedirects {
		t.Errorf("defaults: %+v", plain)
	}
	if a := c.Modules["ws_bearer"].Websocket.HTTPClientConfig.Authorization; a == nil || a.Type != "Bearer" {
		t.Errorf("authorization type should default to Bearer: %+v", a)
	}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if s := string(out); strings.Contains(s, "never-shown") || !strings.Contains(s, "visible") || !strings.Contains(s, "prober: websocket") {
		t.Errorf("/config must show the module and hide header secrets:\n%s", s)
	}
}

func TestWebsocketBadFixtures(t *testing.T) {
	tests := []struct{ file, err string }{
		{"websocket-bad-header-string.yml", "line 7: cannot unmarshal !!str `my_header` into a header: want a mapping of values, secrets and files lists"},
		{"websocket-bad-header-list.yml", "line 6: cannot unmarshal !!seq into a header: want a mapping of values, secrets and files lists"},
		{"websocket-bad-regexp.yml", `invalid regular expression "hello(["`},
		{"websocket-bad-unknown-field.yml", `line 6: unknown field "tls_config" in websocket`},
		{"websocket-bad-auth.yml", "at most one of basic_auth, oauth2 & authorization must be configured"},
		{"websocket-bad-handshake-header.yml", `header "sec-websocket-version" is written by the websocket handshake and cannot be configured`},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			_, err := LoadFile(filepath.Join("testdata", tc.file))
			want := "parsing config file testdata/" + tc.file + ": "
			if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error mismatch\n got: %v\nwant: %s…%s", err, want, tc.err)
			}
		})
	}
}
