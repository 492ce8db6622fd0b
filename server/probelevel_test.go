package server

import (
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/internal/syncbuf"
)

// TestProbeLogLevel: with a probe logger (--log.prober), a probe's lines
// are printed there at or above its level, the per-step info lines
// counting as debug; debug=true keeps every line whatever the level; and
// the exporter's own logger, even at debug, prints none of them.
func TestProbeLogLevel(t *testing.T) {
	for _, tc := range []struct {
		level      slog.Level
		want, lack []string
	}{
		{slog.LevelDebug, []string{`level=INFO msg=echo module=echo target=a.test hostname=h`, `msg="beginning probe"`, `level=ERROR msg="prober panicked" module=panic`}, nil},
		{slog.LevelInfo, []string{`level=ERROR msg="prober panicked" module=panic target=b.test`}, []string{"msg=echo", "beginning probe"}},
		{slog.LevelError, []string{`msg="prober panicked"`}, []string{"msg=echo", "beginning probe"}},
		{slog.LevelError + 1, nil, []string{"msg="}},
	} {
		t.Run(tc.level.String(), func(t *testing.T) {
			var out, main syncbuf.Buffer
			holder := config.NewHolder("", nil)
			holder.Set(withTestModules(t, testConfig))
			reg := prometheus.NewRegistry()
			s := httptest.NewServer(NewMux(Options{
				Probe: ProbeOptions{
					Config: holder, Probers: testProbers(), History: NewHistory(10),
					Logger:   slog.New(slog.NewTextHandler(&main, &slog.HandlerOptions{Level: slog.LevelDebug})),
					ProbeLog: slog.NewTextHandler(&out, &slog.HandlerOptions{Level: tc.level}),
				},
				Gatherer: reg, Reload: holder.Reload,
			}))
			defer s.Close()
			code, debug := get(t, s.URL+"/probe?module=echo&target=a.test&hostname=h&debug=true", nil)
			if code != 200 || !strings.Contains(debug, "msg=echo") || !strings.Contains(debug, "beginning probe") {
				t.Errorf("debug=true: %d, want every line:\n%s", code, debug)
			}
			get(t, s.URL+"/probe?module=panic&target=b.test", nil)
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("the probe logger lacks %q:\n%s", w, out.String())
				}
			}
			for _, l := range tc.lack {
				if strings.Contains(out.String(), l) {
					t.Errorf("the probe logger has %q:\n%s", l, out.String())
				}
			}
			if strings.Contains(main.String(), "msg=echo") || strings.Contains(main.String(), "prober panicked") {
				t.Errorf("the exporter's logger printed probe lines:\n%s", main.String())
			}
		})
	}
}
