// Package diagnose localises a connection fault — the LAN, the ISP, DNS or
// the remote end — from the Results of the ordinary probers: pings to the
// gateway and to internet targets, a trace and pings to the routers it
// found, DNS queries through each resolver, web requests and optionally a
// speed test. Run plans and runs those checks; Diagnose applies the rules
// to their Results (it sends nothing, so it is tested with synthetic
// Results); the isp prober (registered here, since this package imports
// the prober package's Result types) serves the same diagnosis to
// Prometheus. `isp-checker run` prints it for people and as JSON.
package diagnose

import (
	"strings"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/prober"
)

// Faults: where the connection breaks. Segments lists them in the order
// of the probe_isp_fault metric's segment label.
const (
	FaultNone   = "none"
	FaultLAN    = "lan"
	FaultISP    = "isp"
	FaultDNS    = "dns"
	FaultRemote = "remote"
	// FaultUnknown goes with VerdictUnknown: what the verdict needs was not
	// measured, so no segment can be named.
	FaultUnknown = "unknown"
)

// Segments are every fault value, FaultNone first.
var Segments = []string{FaultNone, FaultLAN, FaultISP, FaultDNS, FaultRemote, FaultUnknown}

// Verdicts: how bad it is. Their exit codes (ExitCode) are those of
// `isp-checker run`.
const (
	VerdictHealthy  = "healthy"
	VerdictDegraded = "degraded"
	VerdictDown     = "down"
	// VerdictUnknown: a check the verdict needs could not run (no
	// permission to ping, no socket, no time left), so the connection's
	// state is not known — never healthy by default.
	VerdictUnknown = "unknown"
)

// ExitCode maps a verdict to the exit status of `isp-checker run` (and the
// value of probe_isp_verdict): 0 healthy, 1 degraded, 2 down, 4 unknown
// (3 is run's usage error).
func ExitCode(verdict string) int {
	switch verdict {
	case VerdictHealthy:
		return 0
	case VerdictDegraded:
		return 1
	case VerdictUnknown:
		return 4
	}
	return 2
}

// Dimension names, in display order.
const (
	DimLoss        = "loss"
	DimLatency     = "latency"
	DimJitter      = "jitter"
	DimDNS         = "dns"
	DimBufferbloat = "bufferbloat"
)

// DimensionNames lists the dimensions in display order.
var DimensionNames = []string{DimLoss, DimLatency, DimJitter, DimDNS, DimBufferbloat}

// ISPResult is the result of a diagnosis: the verdict, where the fault is,
// why (evidence in words), scores, and every check's own Result.
type ISPResult struct {
	prober.Common
	// Verdict is healthy, degraded, down or unknown.
	Verdict string `json:"verdict"`
	// Fault is none, lan, isp, dns, remote, or unknown (with the verdict
	// unknown).
	Fault string `json:"fault"`
	// Score is the connection's health from 0 to 1: the lowest dimension
	// score, and 0 when the verdict is down; nil when the verdict is
	// unknown (nothing to score). Grade is its letter ("" when nil).
	Score *float64 `json:"score,omitempty"`
	Grade string   `json:"grade,omitempty"`
	// Summary is the verdict in one line.
	Summary string `json:"summary"`
	// Evidence says why, in plain words; the first line decided the fault.
	Evidence   []string   `json:"evidence"`
	Dimensions Dimensions `json:"dimensions"`
	Thresholds Thresholds `json:"thresholds"`
	// Plan is what was checked (after defaults and auto-detection).
	Plan   Plan   `json:"plan"`
	Checks Checks `json:"checks"`
	// Statuses are the checks' statuses as the rules judged them, for the
	// text report; the JSON report has each check's Result instead.
	Statuses Statuses `json:"-"`
}

// Dimensions are the per-dimension scores.
type Dimensions struct {
	Loss        Dimension `json:"loss"`
	Latency     Dimension `json:"latency"`
	Jitter      Dimension `json:"jitter"`
	DNS         Dimension `json:"dns"`
	Bufferbloat Dimension `json:"bufferbloat"`
}

// List returns the dimensions in display order.
func (d *Dimensions) List() []*Dimension {
	return []*Dimension{&d.Loss, &d.Latency, &d.Jitter, &d.DNS, &d.Bufferbloat}
}

// Dimension is one aspect of the connection's quality.
type Dimension struct {
	Name string `json:"name"`
	// Measured is false when no check measured it (bufferbloat without a
	// speed test, DNS without resolvers, loss without a ping that could
	// run); then Score, Grade and Value are absent and Detail says why.
	Measured bool     `json:"measured"`
	Score    *float64 `json:"score,omitempty"`
	Grade    string   `json:"grade,omitempty"`
	// Value is the measurement in Unit (ratio or seconds), absent when
	// there is none (not measured, or a check that failed outright: no
	// reply has no round-trip time); Threshold is the value above which
	// it is a fault.
	Value     *float64 `json:"value,omitempty"`
	Unit      string   `json:"unit"`
	Threshold float64  `json:"threshold"`
	// Detail says what was measured, in words.
	Detail string `json:"detail,omitempty"`
}

// Thresholds are the configured thresholds in base units.
type Thresholds struct {
	LossRatio             float64 `json:"loss_ratio"`
	GatewayLatencySeconds float64 `json:"gateway_latency_seconds"`
	LatencySeconds        float64 `json:"latency_seconds"`
	JitterSeconds         float64 `json:"jitter_seconds"`
	DNSLatencySeconds     float64 `json:"dns_latency_seconds"`
	BufferbloatSeconds    float64 `json:"bufferbloat_seconds"`
}

// ThresholdsFrom converts the configured thresholds.
func ThresholdsFrom(t config.ISPThresholds) Thresholds {
	return Thresholds{
		LossRatio:             t.LossRatio,
		GatewayLatencySeconds: t.GatewayLatency.Seconds(),
		LatencySeconds:        t.Latency.Seconds(),
		JitterSeconds:         t.Jitter.Seconds(),
		DNSLatencySeconds:     t.DNSLatency.Seconds(),
		BufferbloatSeconds:    t.Bufferbloat.Seconds(),
	}
}

// Sources of the gateway and the resolvers, as Plan reports them.
const (
	SourceFlag       = "flag"        // a command-line flag
	SourceConfig     = "config"      // the module's configuration
	SourceRoute      = "route"       // the routing table's default route
	SourceResolvConf = "resolv.conf" // /etc/resolv.conf
	SourceNone       = "none"        // not found, or turned off
)

// Plan is what a diagnosis checks.
type Plan struct {
	// Gateway is the gateway's address ("" when none is checked) and
	// GatewaySource where it came from; GatewayNote says why there is
	// none, when there is none.
	Gateway       string `json:"gateway,omitempty"`
	GatewaySource string `json:"gateway_source"`
	GatewayNote   string `json:"gateway_note,omitempty"`
	// Targets are pinged; the first is traced.
	Targets    []string `json:"targets"`
	DNSServers []string `json:"dns_servers"`
	DNSSource  string   `json:"dns_source"`
	DNSNote    string   `json:"dns_note,omitempty"`
	DNSName    string   `json:"dns_name"`
	HTTPURLs   []string `json:"http_urls"`
	// SpeedURL is set when the speed test runs.
	SpeedURL string `json:"speed_url,omitempty"`
	// ResponsivenessURL is set when the responsiveness test runs (with the
	// speed test).
	ResponsivenessURL string `json:"responsiveness_url,omitempty"`
	// Options are the module's measurement options (packets, interval, …);
	// not part of the JSON report beyond what the checks show.
	Options config.ISPProbe `json:"-"`
}

// Checks are the Results of every check, as the probers returned them.
type Checks struct {
	// Gateway is the ping to the gateway (absent when none is known).
	Gateway *prober.ICMPResult `json:"gateway,omitempty"`
	// Targets are the pings to the internet targets, in Plan order.
	Targets []*prober.ICMPResult `json:"targets"`
	// Trace is the trace to the first target.
	Trace *prober.TracerouteResult `json:"trace,omitempty"`
	// Hops are the pings to the routers the trace found beyond the gateway.
	Hops []HopCheck `json:"hops,omitempty"`
	// DNS are the queries through each resolver, in Plan order.
	DNS []DNSCheck `json:"dns"`
	// HTTP are the web requests, in Plan order.
	HTTP []*prober.HTTPResult `json:"http"`
	// MTU is the path-MTU search toward the first target (absent with
	// mtu: false).
	MTU *prober.MTUResult `json:"mtu,omitempty"`
	// Throughput is the speed test (absent unless it ran).
	Throughput *prober.ThroughputResult `json:"throughput,omitempty"`
	// Responsiveness is the responsiveness test (RPM), after the speed
	// test (absent unless it ran).
	Responsiveness *prober.ResponsivenessResult `json:"responsiveness,omitempty"`
}

// HopCheck is a ping to one router of the trace.
type HopCheck struct {
	TTL     int                `json:"ttl"`
	Address string             `json:"address"`
	Ping    *prober.ICMPResult `json:"ping"`
}

// DNSCheck is the query through one resolver: Result is the last attempt's
// (the successful one, if any), Attempts how many were made.
type DNSCheck struct {
	Server   string `json:"server"`
	Attempts int    `json:"attempts"`
	// WaitedSeconds is what a user waited for the answer: every attempt's
	// time up to the one that answered (a lost first query costs its whole
	// timeout), or all of them when none did.
	WaitedSeconds float64           `json:"waited_seconds"`
	Result        *prober.DNSResult `json:"result"`
	// Integrity is the query for a name that cannot exist (absent with
	// dns_integrity: false): NXDOMAIN is right, an address means the
	// resolver rewrites NXDOMAIN (see RewritesNXDOMAIN).
	Integrity *prober.DNSResult `json:"integrity,omitempty"`
}

// RewritesNXDOMAIN reports whether the resolver answered the name that
// cannot exist with records, and which.
func (c DNSCheck) RewritesNXDOMAIN() (bool, []string) {
	r := c.Integrity
	if r == nil || !r.QuerySucceeded || r.Rcode != "NOERROR" || r.AnswerRRs == 0 {
		return false, nil
	}
	var addrs []string
	for _, a := range r.Answer {
		if f := strings.Fields(a); len(f) > 0 {
			addrs = append(addrs, f[len(f)-1])
		}
	}
	return true, addrs
}

// IntegrityRcode is how the resolver answered the name that cannot exist:
// its rcode ("NXDOMAIN", the honest answer; "REFUSED", "SERVFAIL", …),
// "NOERROR with no records" for an empty answer, "" when no answer came.
// Only NOERROR with records is a rewrite (RewritesNXDOMAIN): a resolver
// that refuses the name or fails on it leads nobody anywhere, though it
// does not show either whether it would rewrite a name in a real zone.
func (c DNSCheck) IntegrityRcode() string {
	r := c.Integrity
	switch {
	case r == nil || !r.QuerySucceeded:
		return ""
	case r.Rcode == "NOERROR" && r.AnswerRRs == 0:
		return "NOERROR with no records"
	}
	return r.Rcode
}
