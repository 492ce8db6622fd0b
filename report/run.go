package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/version"

	"github.com/isp-checker/isp-checker/diagnose"
	"github.com/isp-checker/isp-checker/prober"
)

// RunSchemaVersion versions the JSON report of `isp-checker run`
// (docs/report-schema.md). It changes when a field changes meaning or goes
// away; added fields do not change it.
const RunSchemaVersion = 1

// RunFormats are the output formats of `isp-checker run`.
var RunFormats = []string{"text", "json"}

// RunJSON is the JSON report of `isp-checker run`: the diagnosis on top,
// every check's Result below.
type RunJSON struct {
	SchemaVersion int    `json:"schema_version"`
	Tool          string `json:"tool"`
	Version       string `json:"version"`
	// Verdict is healthy, degraded or down; ExitCode the matching exit
	// status (0, 1, 2).
	Verdict  string `json:"verdict"`
	Fault    string `json:"fault"`
	ExitCode int    `json:"exit_code"`
	// Score is the health score (0–1) and Grade its letter.
	Score           float64               `json:"score"`
	Grade           string                `json:"grade"`
	Summary         string                `json:"summary"`
	Evidence        []string              `json:"evidence"`
	Error           string                `json:"error,omitempty"`
	StartedAt       time.Time             `json:"started_at"`
	DurationSeconds float64               `json:"duration_seconds"`
	Dimensions      diagnose.Dimensions   `json:"dimensions"`
	Thresholds      diagnose.Thresholds   `json:"thresholds"`
	Plan            diagnose.Plan         `json:"plan"`
	Checks          diagnose.Checks       `json:"checks"`
	ISPStart        *prober.TracerouteHop `json:"isp_start,omitempty"`
}

// NewRunJSON builds the JSON document of a diagnosis.
func NewRunJSON(r *diagnose.ISPResult) RunJSON {
	doc := RunJSON{
		SchemaVersion: RunSchemaVersion, Tool: "isp-checker", Version: version.Version,
		Verdict: r.Verdict, Fault: r.Fault, ExitCode: diagnose.ExitCode(r.Verdict),
		Score: r.Score, Grade: r.Grade, Summary: r.Summary, Evidence: r.Evidence,
		StartedAt: r.StartedAt.UTC(), DurationSeconds: r.DurationSeconds,
		Dimensions: r.Dimensions, Thresholds: r.Thresholds, Plan: r.Plan, Checks: r.Checks,
		ISPStart: diagnose.ISPStart(r), Error: r.Error,
	}
	if doc.Evidence == nil {
		doc.Evidence = []string{}
	}
	return doc
}

// TextOptions style the text report.
type TextOptions struct {
	// Color adds ANSI colours (for a terminal).
	Color bool
}

// WriteRun writes a diagnosis as text or JSON.
func WriteRun(w io.Writer, format string, r *diagnose.ISPResult, o TextOptions) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(NewRunJSON(r))
	case "text":
		return writeRunText(w, r, o)
	}
	return fmt.Errorf("unknown format %q (want one of %s)", format, strings.Join(RunFormats, ", "))
}

// ANSI colours.
const (
	red    = "\033[31m"
	green  = "\033[32m"
	yellow = "\033[33m"
	bold   = "\033[1m"
	reset  = "\033[0m"
)

type painter struct{ on bool }

func (p painter) paint(color, s string) string {
	if !p.on || s == "" {
		return s
	}
	return color + s + reset
}

// status colours a check's status word.
func (p painter) status(s string) string {
	switch s {
	case "ok":
		return p.paint(green, s)
	case "FAIL":
		return p.paint(red, s)
	case "-":
		return s
	}
	return p.paint(yellow, s)
}

func (p painter) grade(g string) string {
	switch g {
	case "A", "B":
		return p.paint(green, g)
	case "C":
		return p.paint(yellow, g)
	case "":
		return "-"
	}
	return p.paint(red, g)
}

func (p painter) verdict(v string) string {
	up := strings.ToUpper(v)
	switch v {
	case diagnose.VerdictHealthy:
		return p.paint(bold+green, up)
	case diagnose.VerdictDegraded:
		return p.paint(bold+yellow, up)
	}
	return p.paint(bold+red, up)
}

// faultWords say where the fault is, for the verdict line.
var faultWords = map[string]string{
	diagnose.FaultNone:   "no fault found",
	diagnose.FaultLAN:    "the fault is in your local network (LAN: Wi-Fi, cables, router)",
	diagnose.FaultISP:    "the fault is at your internet provider (beyond your router)",
	diagnose.FaultDNS:    "the fault is DNS (name resolution)",
	diagnose.FaultRemote: "the fault is at the remote end (a site or destination), not your connection",
}

func writeRunText(w io.Writer, r *diagnose.ISPResult, o TextOptions) error {
	p := painter{on: o.Color}
	t := r.Thresholds
	fmt.Fprintf(w, "isp-checker run: %s\n\n", planLine(r.Plan))

	// The checks, with the status a person reads first.
	checks := &table{header: []string{"CHECK", "TARGET", "RESULT", "DETAIL"}}
	row := func(check, target, status, detail string) {
		checks.add([]string{check, oneLine(target, 48), status, oneLine(detail, 110)}, map[int]string{2: p.status(status)})
	}
	gwRTT := 0.0
	if g := r.Checks.Gateway; g != nil {
		status := pingStatus(g, t.LossRatio)
		if status == "ok" && g.PacketsReceived > 0 && (g.RTTMeanSeconds > t.GatewayLatencySeconds || (g.PacketsReceived >= 2 && g.JitterSeconds > t.JitterSeconds)) {
			status = "slow"
		}
		if g.PacketsReceived > 0 {
			gwRTT = g.RTTMeanSeconds
		}
		row("gateway", r.Plan.Gateway, status, pingDetail(g))
	} else {
		row("gateway", "-", "-", r.Plan.GatewayNote)
	}
	for _, tr := range r.Checks.Targets {
		if tr == nil {
			continue
		}
		status := pingStatus(tr, t.LossRatio)
		if status == "ok" && (tr.RTTMeanSeconds-gwRTT > t.LatencySeconds || (tr.PacketsReceived >= 2 && tr.JitterSeconds > t.JitterSeconds)) {
			status = "slow"
		}
		row("ping", tr.Target, status, pingDetail(tr))
	}
	if tr := r.Checks.Trace; tr != nil {
		status, detail := "ok", plural(tr.HopCount, "hop", "hops")
		if !tr.Success {
			status, detail = "FAIL", diagnose.Reason(tr.Error)
		}
		if h := diagnose.ISPStart(r); h != nil {
			detail += fmt.Sprintf("; the ISP starts at hop %d (%s)", h.TTL, h.Address)
		}
		row("trace", tr.Target, status, detail)
	}
	for _, h := range r.Checks.Hops {
		if h.Ping == nil {
			continue
		}
		status := pingStatus(h.Ping, t.LossRatio)
		if status == "FAIL" {
			status = "silent" // routers may ignore ping; only loss that carries on counts
		}
		row(fmt.Sprintf("hop %d", h.TTL), h.Address, status, pingDetail(h.Ping))
	}
	for _, d := range r.Checks.DNS {
		status, detail := "ok", ""
		switch res := d.Result; {
		case res == nil:
			status, detail = "FAIL", "not run"
		case !res.Success:
			status, detail = "FAIL", diagnose.Reason(res.Error)
		default:
			detail = fmt.Sprintf("%s %s in %s", r.Plan.DNSName, res.Rcode, diagnose.Dur(res.Phases.ConnectSeconds+res.Phases.RequestSeconds))
		}
		if d.Attempts > 1 {
			detail += fmt.Sprintf(" (%d attempts)", d.Attempts)
		}
		row("dns", d.Server, status, detail)
	}
	if len(r.Checks.DNS) == 0 {
		row("dns", "-", "-", r.Plan.DNSNote)
	}
	for _, h := range r.Checks.HTTP {
		if h == nil {
			continue
		}
		if h.Success {
			row("http", h.Target, "ok", fmt.Sprintf("%d in %s", h.StatusCode, diagnose.Dur(h.DurationSeconds)))
			continue
		}
		detail := diagnose.Reason(h.Error)
		if h.StatusCode > 0 {
			detail = fmt.Sprintf("%d: %s", h.StatusCode, detail)
		}
		row("http", h.Target, "FAIL", detail)
	}
	if tp := r.Checks.Throughput; tp != nil {
		if tp.Success {
			detail := fmt.Sprintf("%.1f Mbit/s %s", tp.BytesPerSecond*8/1e6, tp.Direction)
			if tp.LatencyIdleSamples > 0 && tp.LatencyLoadedSamples > 0 {
				detail += fmt.Sprintf("; latency %s idle, %s loaded", diagnose.Dur(tp.LatencyIdleSeconds), diagnose.Dur(tp.LatencyLoadedSeconds))
			}
			row("speed", tp.Target, "ok", detail)
		} else {
			row("speed", tp.Target, "FAIL", diagnose.Reason(tp.Error))
		}
	}
	checks.write(w)

	fmt.Fprintln(w)
	dims := &table{header: []string{"DIMENSION", "SCORE", "GRADE", "VALUE", "THRESHOLD", "DETAIL"}}
	for _, d := range r.Dimensions.List() {
		if !d.Measured {
			dims.add([]string{d.Name, "-", "-", "-", dimValue(d.Unit, d.Threshold), "not measured: " + d.Detail}, nil)
			continue
		}
		dims.add([]string{d.Name, fmt.Sprintf("%.2f", d.Score), d.Grade, dimValue(d.Unit, d.Value), dimValue(d.Unit, d.Threshold), d.Detail},
			map[int]string{2: p.grade(d.Grade)})
	}
	dims.write(w)

	fmt.Fprintln(w, "\nWhy:")
	for i, e := range r.Evidence {
		if i == 0 && r.Fault != diagnose.FaultNone {
			e = p.paint(bold, e)
		}
		fmt.Fprintf(w, "  - %s\n", e)
	}
	fmt.Fprintf(w, "\nVerdict: %s — %s. Health score %.2f (%s).\n", p.verdict(r.Verdict), faultWords[r.Fault], r.Score, p.grade(r.Grade))
	return nil
}

// table aligns columns by their plain text, so colour codes (which
// tabwriter would count as width) do not shift them.
type table struct {
	header []string
	rows   [][]string
	shown  []map[int]string // per row: a cell's coloured form
}

func (t *table) add(cells []string, colored map[int]string) {
	t.rows = append(t.rows, cells)
	t.shown = append(t.shown, colored)
}

func (t *table) write(w io.Writer) {
	widths := make([]int, len(t.header))
	for _, r := range append([][]string{t.header}, t.rows...) {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	line := func(cells []string, colored map[int]string) {
		var b strings.Builder
		for i, c := range cells {
			shown := c
			if s, ok := colored[i]; ok {
				shown = s
			}
			b.WriteString(shown)
			if i < len(cells)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)+2))
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	line(t.header, nil)
	for i, r := range t.rows {
		line(r, t.shown[i])
	}
}

// planLine says what was checked.
func planLine(pl diagnose.Plan) string {
	var parts []string
	if pl.Gateway != "" {
		parts = append(parts, fmt.Sprintf("gateway %s (%s)", pl.Gateway, pl.GatewaySource))
	} else {
		parts = append(parts, "no gateway")
	}
	parts = append(parts, plural(len(pl.Targets), "target", "targets"))
	if pl.DNSSource == diagnose.SourceResolvConf {
		parts = append(parts, plural(len(pl.DNSServers), "resolver", "resolvers")+" (resolv.conf)")
	} else {
		parts = append(parts, plural(len(pl.DNSServers), "resolver", "resolvers"))
	}
	parts = append(parts, plural(len(pl.HTTPURLs), "web site", "web sites"))
	if pl.SpeedURL != "" {
		parts = append(parts, "speed test")
	}
	return strings.Join(parts, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// pingStatus is FAIL (no reply, or not run), lossy (above the loss
// threshold) or ok.
func pingStatus(r *prober.ICMPResult, lossThreshold float64) string {
	switch {
	case r.PacketsReceived == 0:
		return "FAIL"
	case r.LossRatio > lossThreshold:
		return "lossy"
	}
	return "ok"
}

func pingDetail(r *prober.ICMPResult) string {
	if r.PacketsSent == 0 {
		return diagnose.Reason(r.Error)
	}
	if r.PacketsReceived == 0 {
		return fmt.Sprintf("no reply to %d echo requests", r.PacketsSent)
	}
	s := fmt.Sprintf("%s loss (%d/%d), %s", diagnose.Pct(r.LossRatio), r.PacketsSent-r.PacketsReceived, r.PacketsSent, diagnose.Dur(r.RTTMeanSeconds))
	if r.PacketsReceived >= 2 {
		s += ", jitter " + diagnose.Dur(r.JitterSeconds)
	}
	return s
}

func dimValue(unit string, v float64) string {
	if unit == "ratio" {
		return diagnose.Pct(v)
	}
	return diagnose.Dur(v)
}
