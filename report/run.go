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
// away; added fields do not change it. 2: the verdict unknown (exit code
// 4, fault unknown), and a value that was not measured is absent instead
// of 0 (score, grade, dimensions' score and value).
const RunSchemaVersion = 2

// RunFormats are the output formats of `isp-checker run`.
var RunFormats = []string{"text", "json"}

// RunJSON is the JSON report of `isp-checker run`: the diagnosis on top,
// every check's Result below.
type RunJSON struct {
	SchemaVersion int    `json:"schema_version"`
	Tool          string `json:"tool"`
	Version       string `json:"version"`
	// Verdict is healthy, degraded, down or unknown; ExitCode the matching
	// exit status (0, 1, 2, 4).
	Verdict  string `json:"verdict"`
	Fault    string `json:"fault"`
	ExitCode int    `json:"exit_code"`
	// Interrupted: the run was stopped (Ctrl-C, SIGTERM) before its checks
	// finished; the verdict is then unknown.
	Interrupted bool `json:"interrupted"`
	// Score is the health score (0–1) and Grade its letter; both absent
	// when the verdict is unknown.
	Score           *float64              `json:"score,omitempty"`
	Grade           string                `json:"grade,omitempty"`
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
		Verdict: r.Verdict, Fault: r.Fault, ExitCode: diagnose.ExitCode(r.Verdict), Interrupted: r.Interrupted,
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
	case diagnose.VerdictDegraded, diagnose.VerdictUnknown:
		return p.paint(bold+yellow, up)
	}
	return p.paint(bold+red, up)
}

// faultWords say where the fault is, for the verdict line.
var faultWords = map[string]string{
	diagnose.FaultNone:    "no fault found",
	diagnose.FaultLAN:     "the fault is in your local network (LAN: Wi-Fi, cables, router)",
	diagnose.FaultISP:     "the fault is at your internet provider (beyond your router)",
	diagnose.FaultDNS:     "the fault is DNS (name resolution)",
	diagnose.FaultRemote:  "the fault is at the remote end (a site or destination), not your connection",
	diagnose.FaultUnknown: "the connection could not be measured (see the first reason under Why)",
}

// Text layout: the DETAIL column and the reasons wrap at these widths
// rather than being cut, since the end of an error often holds the fix.
const (
	detailWidth = 72
	whyWidth    = 96
)

func writeRunText(w io.Writer, r *diagnose.ISPResult, o TextOptions) error {
	p := painter{on: o.Color}
	fmt.Fprintf(w, "isp-checker run: %s\n\n", planLine(r.Plan))
	checks := &table{header: []string{"CHECK", "TARGET", "RESULT", "DETAIL"}, wrap: map[int]int{3: detailWidth}}
	seen := map[string]bool{}
	row := func(check, target, status, detail string) {
		// A long error is written once: the pings of a host without ICMP
		// would otherwise repeat the same paragraph for every target.
		if len(detail) > detailWidth && seen[detail] {
			detail = "the same error as above"
		}
		seen[detail] = true
		checks.add([]string{check, oneLine(target, 48), status, detail}, map[int]string{2: p.status(status)})
	}
	checkRows(r, row)
	checks.write(w)

	fmt.Fprintln(w)
	dims := &table{header: []string{"DIMENSION", "SCORE", "GRADE", "VALUE", "THRESHOLD", "DETAIL"}, wrap: map[int]int{5: detailWidth}}
	for _, d := range r.Dimensions.List() {
		if !d.Measured {
			dims.add([]string{d.Name, "-", "-", "-", dimValue(d.Unit, d.Threshold), "not measured: " + d.Detail}, nil)
			continue
		}
		value := "-"
		if d.Value != nil {
			value = dimValue(d.Unit, *d.Value)
		}
		dims.add([]string{d.Name, diagnose.ScoreText(*d.Score), d.Grade, value, dimValue(d.Unit, d.Threshold), d.Detail},
			map[int]string{2: p.grade(d.Grade)})
	}
	dims.write(w)

	fmt.Fprintln(w, "\nWhy:")
	for i, e := range r.Evidence {
		lines := wrapText(e, whyWidth)
		for j, l := range lines {
			if i == 0 && r.Fault != diagnose.FaultNone {
				l = p.paint(bold, l)
			}
			lead := "  - "
			if j > 0 {
				lead = "    "
			}
			fmt.Fprintf(w, "%s%s\n", lead, l)
		}
	}
	score := "not measured"
	if r.Score != nil {
		score = diagnose.ScoreText(*r.Score) + " (" + p.grade(r.Grade) + ")"
	}
	words := faultWords[r.Fault]
	if r.Interrupted {
		words = "the run was interrupted before its checks finished, so nothing is judged"
	}
	fmt.Fprintf(w, "\nVerdict: %s — %s. Health score %s.\n", p.verdict(r.Verdict), words, score)
	return nil
}

// checkRows lists every check as a table row, in plan order, with the
// status the diagnosis gave it.
func checkRows(r *diagnose.ISPResult, row func(check, target, status, detail string)) {
	st := &r.Statuses
	want := r.Plan.Options.Packets
	if g := r.Checks.Gateway; g != nil {
		row("gateway", r.Plan.Gateway, shownStatus(st.Gateway), pingDetail(g, want))
	} else {
		row("gateway", "-", "-", r.Plan.GatewayNote)
	}
	for i, tr := range r.Checks.Targets {
		if tr != nil {
			row("ping", tr.Target, shownStatus(at(st.Targets, i)), pingDetail(tr, want))
		}
	}
	if tr := r.Checks.Trace; tr != nil {
		detail := Plural(tr.HopCount, "hop", "hops")
		if !tr.Success {
			detail = diagnose.Why(&tr.Common)
		}
		if h := diagnose.ISPStart(r); h != nil {
			detail += fmt.Sprintf("; the ISP starts at hop %d (%s)", h.TTL, h.Address)
		}
		row("trace", tr.Target, shownStatus(st.Trace), detail)
	}
	for i, h := range r.Checks.Hops {
		if h.Ping != nil {
			row(fmt.Sprintf("hop %d", h.TTL), h.Address, shownStatus(at(st.Hops, i)), pingDetail(h.Ping, want))
		}
	}
	if m := r.Checks.MTU; m != nil {
		row("mtu", m.Target, shownStatus(st.MTU), mtuDetail(m))
	}
	for i, d := range r.Checks.DNS {
		row("dns", d.Server, shownStatus(at(st.DNS, i)), dnsDetail(r.Plan.DNSName, d))
	}
	if len(r.Checks.DNS) == 0 {
		row("dns", "-", "-", r.Plan.DNSNote)
	}
	for i, h := range r.Checks.HTTP {
		if h != nil {
			row("http", h.Target, shownStatus(at(st.HTTP, i)), httpDetail(h))
		}
	}
	if tp := r.Checks.Throughput; tp != nil {
		detail := diagnose.Why(&tp.Common)
		if tp.Success {
			detail = fmt.Sprintf("%.1f Mbit/s %s", tp.BytesPerSecond*8/1e6, tp.Direction)
			if tp.LatencyIdleSamples > 0 && tp.LatencyLoadedSamples > 0 {
				detail += fmt.Sprintf("; latency %s idle, %s loaded", diagnose.Dur(tp.LatencyIdleSeconds), diagnose.Dur(tp.LatencyLoadedSeconds))
			}
		}
		row("speed", tp.Target, shownStatus(st.Throughput), detail)
	}
	if rr := r.Checks.Responsiveness; rr != nil {
		detail := diagnose.Why(&rr.Common)
		if rr.RPM > 0 {
			detail = fmt.Sprintf("%.0f RPM %s, bufferbloat grade %s", rr.RPM, rr.Level, rr.BloatGrade)
			for _, s := range rr.Stages {
				detail += fmt.Sprintf("; %s %.0f", s.Direction, s.RPM)
				if !s.Stable {
					detail += " (not stable)"
				}
			}
		}
		row("rpm", rr.Target, shownStatus(st.Responsiveness), detail)
	}
}

// at is list[i], or "" past its end (a result that was not diagnosed).
func at(list []string, i int) string {
	if i < len(list) {
		return list[i]
	}
	return ""
}

// shownStatus is a status as the RESULT column shows it: a failure in
// capitals, so it stands out without colour; "-" when there is none.
func shownStatus(s string) string {
	switch s {
	case diagnose.StatusFail:
		return "FAIL"
	case "":
		return "-"
	}
	return s
}

func dnsDetail(name string, d diagnose.DNSCheck) string {
	var detail string
	switch res := d.Result; {
	case res == nil:
		detail = "not run"
	case !res.Success:
		detail = diagnose.Why(&res.Common)
		if d.Attempts > 1 {
			detail += fmt.Sprintf(" (%d attempts)", d.Attempts)
		}
	default:
		detail = fmt.Sprintf("%s %s in %s", name, res.Rcode, diagnose.Dur(d.Waited()))
		if d.Attempts > 1 {
			detail += fmt.Sprintf(" (answered on attempt %d)", d.Attempts)
		}
	}
	if ok, addrs := d.RewritesNXDOMAIN(); ok {
		detail += fmt.Sprintf("; a name that cannot exist → %s: rewrites NXDOMAIN", strings.Join(addrs, ", "))
	} else if rc := d.IntegrityRcode(); rc != "" {
		detail += "; " + rc + " for a name that cannot exist"
	}
	return detail
}

func httpDetail(h *prober.HTTPResult) string {
	if h.Success {
		detail := fmt.Sprintf("%d in %s", h.StatusCode, diagnose.Dur(h.DurationSeconds))
		if h.Redirects > 0 && h.FinalURL != "" && h.FinalURL != h.URL {
			detail += " from " + h.FinalURL
		}
		return detail
	}
	detail := diagnose.Why(&h.Common)
	if h.StatusCode > 0 {
		detail = fmt.Sprintf("%d: %s", h.StatusCode, detail)
	}
	return detail
}

func mtuDetail(m *prober.MTUResult) string {
	if !m.Success && m.PathMTUBytes == 0 {
		return diagnose.Why(&m.Common)
	}
	d := fmt.Sprintf("%d bytes (%s)", m.PathMTUBytes, m.Method)
	if m.BlackHole {
		d += fmt.Sprintf("; larger packets vanish without an ICMP error (local link %d)", m.MaxSizeBytes)
	} else if m.ICMPFrom != "" {
		d += "; signalled by " + m.ICMPFrom
	}
	return d
}

// table aligns columns by their plain text, so colour codes (which
// tabwriter would count as width) do not shift them.
type table struct {
	header []string
	rows   [][]string
	shown  []map[int]string // per row: a cell's coloured form
	// wrap gives columns whose cells wrap onto continuation lines at
	// that width, instead of being cut.
	wrap map[int]int
}

func (t *table) add(cells []string, colored map[int]string) {
	t.rows = append(t.rows, cells)
	t.shown = append(t.shown, colored)
}

func (t *table) write(w io.Writer) {
	var rows [][]string
	var shown []map[int]string
	for i, r := range t.rows {
		parts := map[int][]string{}
		n := 1
		for c, width := range t.wrap {
			if c < len(r) {
				parts[c] = wrapText(r[c], width)
				n = max(n, len(parts[c]))
			}
		}
		for k := range n {
			line := make([]string, len(r))
			for c := range r {
				switch ps, ok := parts[c]; {
				case ok && k < len(ps):
					line[c] = ps[k]
				case !ok && k == 0:
					line[c] = r[c]
				}
			}
			rows = append(rows, line)
			if k == 0 {
				shown = append(shown, t.shown[i])
			} else {
				shown = append(shown, nil)
			}
		}
	}
	t.rows, t.shown = rows, shown
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
	parts = append(parts, Plural(len(pl.Targets), "target", "targets"))
	if pl.DNSSource == diagnose.SourceResolvConf {
		parts = append(parts, Plural(len(pl.DNSServers), "resolver", "resolvers")+" (resolv.conf)")
	} else {
		parts = append(parts, Plural(len(pl.DNSServers), "resolver", "resolvers"))
	}
	parts = append(parts, Plural(len(pl.HTTPURLs), "web site", "web sites"))
	if pl.SpeedURL != "" {
		parts = append(parts, "speed test")
	}
	return strings.Join(parts, ", ")
}

// Plural is n with the word's form for it: "1 module", "2 modules".
func Plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// pingDetail says what a ping found; want is the configured number of
// echo requests (0: unknown), to say when fewer fitted in the time.
func pingDetail(r *prober.ICMPResult, want int) string {
	if r.PacketsSent == 0 {
		return diagnose.Why(&r.Common)
	}
	fewer := ""
	if want > 0 && r.PacketsPlanned > 0 && r.PacketsPlanned < want {
		fewer = fmt.Sprintf(" (%d of %d planned: the rest did not fit in the time)", r.PacketsPlanned, want)
	} else if r.PacketsSent < r.PacketsPlanned {
		fewer = fmt.Sprintf(" (%d of %d planned sent: cut short)", r.PacketsSent, r.PacketsPlanned)
	}
	if r.PacketsReceived == 0 {
		return "no reply to " + Plural(r.PacketsSent, "echo request", "echo requests") + fewer
	}
	s := fmt.Sprintf("%s loss (%d/%d), %s", diagnose.Pct(r.LossRatio), r.PacketsSent-r.PacketsReceived, r.PacketsSent, diagnose.Dur(r.RTTMeanSeconds))
	if r.PacketsReceived >= 2 {
		s += ", jitter " + diagnose.Dur(r.JitterSeconds)
	}
	return s + fewer
}

// wrapText breaks s into lines of at most width runes at spaces (a word
// longer than width gets a line of its own); never cuts.
func wrapText(s string, width int) []string {
	words := strings.Fields(s)
	if len(words) == 0 {
		return []string{""}
	}
	var lines []string
	line := words[0]
	for _, w := range words[1:] {
		if utf8.RuneCountInString(line)+1+utf8.RuneCountInString(w) > width {
			lines = append(lines, line)
			line = w
			continue
		}
		line += " " + w
	}
	return append(lines, line)
}

func dimValue(unit string, v float64) string {
	if unit == "ratio" {
		return diagnose.Pct(v)
	}
	return diagnose.Dur(v)
}
