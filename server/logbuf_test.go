package server

import (
	"bytes"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"
)

// A probe's log, formatted on demand, reads exactly as slog's text handler
// would have written it at the time (attrs and groups of derived loggers,
// levels, timestamps), every record is forwarded at debug level to the
// exporter's logger when that logs debug, and a flood of records keeps its
// head and its tail.
func TestProbeLogFormatsOnDemand(t *testing.T) {
	var eager, forwarded bytes.Buffer
	direct := slog.New(slog.NewTextHandler(&eager, &slog.HandlerOptions{Level: slog.LevelDebug}))
	plog, release := newProbeLog(slog.NewTextHandler(&forwarded, &slog.HandlerOptions{Level: slog.LevelDebug}), nil)
	defer release()
	lazy := slog.New(plog)
	for _, l := range []*slog.Logger{direct, lazy} {
		a := l.With("module", "m", "target", "t")
		a.Info("beginning probe", "timeout_seconds", 1.5)
		g := a.WithGroup("icmp").With("id", 7)
		g.Warn("odd", "err", "x y", "n", 3)
		a.Error("done", "at", time.Unix(0, 0).UTC())
		a.Info("probe finished", "sent", 3, "received", 3, "loss_ratio", 0.0, "rtt_mean_seconds", 4.2e-05, "socket", "privileged", "interval", 10*time.Millisecond, slog.Group("empty"), "jitter_seconds", 2.6e-05)
		l.Debug("root line")
	}
	// The two loggers logged a moment apart: compare all but the time.
	noTime := regexp.MustCompile(`time=\S+ `)
	if got, want := noTime.ReplaceAllString(plog.String(), ""), noTime.ReplaceAllString(eager.String(), ""); got != want || !strings.Contains(plog.String(), "time=") {
		t.Errorf("formatted on demand:\n%s\nwritten at once:\n%s", plog.String(), eager.String())
	}
	if n := strings.Count(forwarded.String(), "level=DEBUG"); n != 5 {
		t.Errorf("%d records forwarded at debug level, want 5:\n%s", n, forwarded.String())
	}
	quiet, release2 := newProbeLog(slog.NewTextHandler(&forwarded, &slog.HandlerOptions{Level: slog.LevelInfo}), nil)
	defer release2()
	if quiet.log.next != nil {
		t.Error("a logger that does not log debug is still derived for every probe")
	}
	// A flood is formatted as it comes, into the capped text: its head
	// and its tail stay, the middle goes, and the whole stays under the cap.
	flood := slog.New(quiet).With("module", "m")
	flood.Info("first")
	for i := range 3000 {
		flood.Info("line", "i", i)
	}
	flood.Error("last")
	s := quiet.String()
	for _, want := range []string{"msg=first", "bytes of log dropped here", "msg=last", "module=m"} {
		if !strings.Contains(s, want) {
			t.Errorf("flood: the log lacks %q", want)
		}
	}
	if len(s) > maxProbeLog+200 {
		t.Errorf("flood: %d bytes, over the cap of %d", len(s), maxProbeLog)
	}
}

// The probe's own attrs, given to newProbeLog, read as a logger.With's
// would, in the kept log and in what is forwarded (to the exporter's
// logger, or to the probe logger at the record's own level), and the
// forwarders are derived only once per chain.
func TestProbeLogBaseAttrs(t *testing.T) {
	var eager, forwarded, stepped bytes.Buffer
	debug := &slog.HandlerOptions{Level: slog.LevelDebug}
	direct := slog.New(slog.NewTextHandler(&eager, debug)).With("module", "m", "target", "t")
	base := []slog.Attr{slog.String("module", "m"), slog.String("target", "t")}
	plog, release := newProbeLog(slog.NewTextHandler(&forwarded, debug), nil, base...)
	defer release()
	steps, release2 := newProbeLog(slog.NewTextHandler(&forwarded, debug), slog.NewTextHandler(&stepped, nil), base...)
	defer release2()
	for _, l := range []*slog.Logger{direct, slog.New(plog), slog.New(steps)} {
		l.Info("beginning probe", "timeout_seconds", 1.5)
		l.WithGroup("icmp").With("id", 7).Warn("odd", "err", "x y")
		l.Info("probe finished", "sent", 3)
	}
	noTime := regexp.MustCompile(`time=\S+ `)
	want := noTime.ReplaceAllString(eager.String(), "")
	for name, got := range map[string]string{"kept": plog.String(), "kept (probe logger)": steps.String()} {
		if got = noTime.ReplaceAllString(got, ""); got != want {
			t.Errorf("%s:\n%s\nwant:\n%s", name, got, want)
		}
	}
	atDebug := strings.NewReplacer("level=INFO", "level=DEBUG", "level=WARN", "level=DEBUG").Replace(want)
	if got := noTime.ReplaceAllString(forwarded.String(), ""); got != atDebug {
		t.Errorf("forwarded to the exporter's logger:\n%s\nwant every line at debug:\n%s", got, atDebug)
	}
	if got := noTime.ReplaceAllString(stepped.String(), ""); got != `level=WARN msg=odd module=m target=t icmp.id=7 icmp.err="x y"`+"\n" {
		t.Errorf("forwarded to the probe logger: %q, want the warning alone, with its attrs", got)
	}
	if n := len(plog.log.nexts); n != 3 {
		t.Errorf("%d forwarders derived, want 3 (the probe's attrs, its icmp group, its id)", n)
	}
}
