package prober

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/internal/icmpecho"
)

// ICMPMaxRecordedRTTs caps ICMPResult.RTTsSeconds.
const ICMPMaxRecordedRTTs = 1000

// icmpBlackboxPayload is the payload size blackbox_exporter sends when
// payload_size is not set (len("Prometheus Blackbox Exporter")).
const icmpBlackboxPayload = 28

// ICMPResult is the result of an icmp probe: one or more echo requests (or,
// with protocol: tcp, TCP connects) to one address, and their statistics.
// Times are in seconds; RTT statistics are over the replies received, and
// are zero when none was.
type ICMPResult struct {
	Common
	// Protocol is icmp or tcp.
	Protocol string `json:"protocol"`
	// SocketMode is the ICMP socket used: privileged (raw) or unprivileged
	// (datagram). Empty for tcp, or when no socket could be opened.
	SocketMode string `json:"socket_mode,omitempty"`
	// EchoID is the echo identifier (privileged mode; an unprivileged
	// socket's identifier is chosen by the kernel and not known here).
	EchoID int `json:"echo_id,omitempty"`
	// Port is the TCP port (protocol tcp).
	Port int `json:"port,omitempty"`
	// MultiPacket: the module asks for more than one packet (packets > 1),
	// so the statistics below are rendered as isp-checker's series; a
	// one-echo module renders blackbox's alone.
	MultiPacket bool `json:"-"`
	// PacketsPlanned is the number of packets the probe meant to send: the
	// module's packets, or fewer when not all fitted in the timeout.
	PacketsPlanned  int     `json:"packets_planned"`
	PacketsSent     int     `json:"packets_sent"`
	PacketsReceived int     `json:"packets_received"`
	Duplicates      int     `json:"duplicates"`
	LossRatio       float64 `json:"loss_ratio"`
	// ForeignReplies counts echo replies for this probe that came from an
	// address other than the target; they are not counted as received.
	ForeignReplies   int     `json:"foreign_replies,omitempty"`
	SetupSeconds     float64 `json:"setup_seconds"`
	RTTMinSeconds    float64 `json:"rtt_min_seconds"`
	RTTMaxSeconds    float64 `json:"rtt_max_seconds"`
	RTTMeanSeconds   float64 `json:"rtt_mean_seconds"`
	RTTStddevSeconds float64 `json:"rtt_stddev_seconds"`
	// JitterSeconds is the mean absolute difference between the RTTs of
	// consecutive replies (in sequence order), as RFC 3550's inter-arrival
	// jitter without its smoothing. Zero with fewer than two replies.
	JitterSeconds float64 `json:"jitter_seconds"`
	// HopLimit is the TTL (IPv4) or hop limit (IPv6) of the last reply,
	// when the kernel reported it.
	HopLimit *int `json:"hop_limit,omitempty"`
	// RTTsSeconds are the RTTs of the replies in sequence order (the first
	// ICMPMaxRecordedRTTs of them).
	RTTsSeconds []float64 `json:"rtts_seconds,omitempty"`
}

// icmpPlan is the schedule of one probe.
type icmpPlan struct {
	packets  int
	interval time.Duration
	// stopAt is when receiving ends at the latest: the deadline less a
	// margin to shut down and report.
	stopAt time.Time
	// replyTimeout, when set, ends the probe that long after the last
	// packet was sent.
	replyTimeout time.Duration
}

func icmpPlanProbe(ctx context.Context, o config.ICMPProbe, now time.Time, logger *slog.Logger) icmpPlan {
	deadline, _ := ctx.Deadline() // Run sets one
	budget := deadline.Sub(now)
	p := icmpPlan{
		packets:      o.PacketsThatFit(budget),
		interval:     o.Interval,
		stopAt:       deadline.Add(-config.ICMPStopMargin(budget)),
		replyTimeout: o.ReplyTimeout,
	}
	if p.packets < o.Packets {
		logger.Warn("not all packets fit in the probe's timeout; sending fewer",
			"packets", o.Packets, "sending", p.packets, "interval", o.Interval, "timeout_seconds", budget.Seconds())
	}
	return p
}

// ProbeICMP is the icmp prober: echo requests to the target, with loss,
// round-trip times and jitter.
func ProbeICMP(ctx context.Context, req *Request) Result {
	var w icmpWait
	if res := w.begin(ctx, req); res != nil {
		return res
	}
	return w.end(w.probe.Wait(ctx))
}

// StartICMP is ProbeICMP for a caller that waits without a goroutine
// (StartFunc): once an ICMP probe's echo requests are queued it returns
// the probe suspended on the echo engine. A tcp probe, or one that failed
// before any request was queued, returns its Result.
func StartICMP(ctx context.Context, req *Request) (Result, *Suspended) {
	p := &icmpParked{}
	if res := p.begin(ctx, req); res != nil {
		return res, nil
	}
	p.s.probe = p
	return nil, &p.s
}

// ICMPStartsAtOnce reports whether StartICMP returns at once for module m
// and target, waiting on nothing: the target needs no lookup (an address,
// or not a host at all, which fails at once) and the probe dials nothing
// (protocol: icmp, not tcp).
func ICMPStartsAtOnce(m *config.Module, target string) bool {
	if m.ICMP.Protocol == config.ICMPProtocolTCP {
		return false
	}
	h, err := config.CanonicalHost(target)
	return err != nil || h.Addr.IsValid()
}

// icmpParked is a suspended icmp probe: its wait and its Suspended in one
// object, the one the /probe handler's parked probe holds of this prober
// besides the engine's.
type icmpParked struct {
	icmpWait
	s Suspended
}

func (p *icmpParked) OnDone(f func()) { p.probe.OnDone(f) }
func (p *icmpParked) Finish() Result  { return p.end(p.probe.Finish()) }

// icmpWait is one run of the icmp prober, and once its echo requests are
// with the echo engine what its end needs. A parked probe holds it for its
// whole wait, so it keeps no ICMPResult (400 bytes, built at the end from
// the few fields known before) and no copy of the Request: a copy (3.8 kB,
// most of it the module) would also sit on the stack of every probe that
// waits on a goroutine and push it into the next size class.
type icmpWait struct {
	probe  *icmpecho.Probe
	cfg    *config.ICMPProbe // the module's, shared by every probe of it
	logger *slog.Logger
	setup  time.Duration
	// What resolve put in the Common: the address (as IPAddr, the string
	// the log has too), the lookup's time, the IP protocol.
	addr       string
	dnsSeconds float64
	packets    int32 // the plan's
	ipProtocol int8
	resolved   bool
}

// begin runs the probe up to its wait on the echo engine; a probe that
// ended already (tcp, or failed) returns its final result.
func (w *icmpWait) begin(ctx context.Context, req *Request) *ICMPResult {
	o := &req.Module.ICMP
	w.cfg, w.logger = o, req.Logger
	var c Common
	ip, ok := req.resolve(ctx, &c, req.Target, o.IPOptions)
	w.resolved, w.dnsSeconds, w.ipProtocol, w.addr = c.Resolved, c.DNSLookupSeconds, int8(c.IPProtocol), c.IPAddr
	if !ok {
		res := w.result()
		res.Common = c // and its error
		return res
	}
	plan := icmpPlanProbe(ctx, *o, time.Now(), w.logger)
	w.packets = int32(plan.packets)
	if o.Protocol == config.ICMPProtocolTCP {
		res := w.result()
		res.Port = o.Port
		rec, err := icmpTCPPing(ctx, req.Policy, w.logger, *o, ip, plan)
		w.conclude(res, rec, err)
		return res
	}
	if err := w.ping(*o, ip, plan); err != nil {
		res := w.result()
		w.conclude(res, nil, err)
		return res
	}
	return nil
}

// result is the probe's ICMPResult with what is known before its wait.
func (w *icmpWait) result() *ICMPResult {
	return &ICMPResult{
		Common: Common{
			Resolved: w.resolved, DNSLookupSeconds: w.dnsSeconds, IPProtocol: int(w.ipProtocol), IPAddr: w.addr,
		},
		Protocol: w.cfg.Protocol, MultiPacket: w.cfg.Packets > 1, PacketsPlanned: int(w.packets),
	}
}

// end finishes a probe that began with the engine's Result.
func (w *icmpWait) end(r *icmpecho.Result) *ICMPResult {
	res := w.result()
	rec, err := w.record(r, res, w.cfg.SourceIPAddress, nil)
	w.conclude(res, rec, err)
	return res
}

// icmpIPAddr is the address net.IPAddr.String (Common.IPAddr) wrote.
func icmpIPAddr(s string) *net.IPAddr {
	ip, zone, _ := strings.Cut(s, "%")
	return &net.IPAddr{IP: net.ParseIP(ip), Zone: zone}
}

// conclude fills res from what the probe saw and judges it.
func (w *icmpWait) conclude(res *ICMPResult, rec *icmpRecord, err error) {
	o, logger := w.cfg, w.logger
	if rec != nil {
		rec.fill(res)
	}
	if err != nil {
		res.FailStep(logger, "cannot probe target", err)
		return
	}
	// The plan's interval is the module's.
	logger.Info("probe finished", "protocol", o.Protocol, "socket", res.SocketMode, "echo_id", res.EchoID,
		"packets", int(w.packets), "interval", o.Interval, "sent", res.PacketsSent, "received", res.PacketsReceived,
		"duplicates", res.Duplicates, "loss_ratio", res.LossRatio, "rtt_mean_seconds", res.RTTMeanSeconds,
		"jitter_seconds", res.JitterSeconds)
	if err := icmpJudge(*o, res, rec); err != nil {
		res.Fail(logger, err.Error(), nil)
		res.Reason = ReasonOf(err) // the first send error, e.g. no route
		return
	}
	res.Success = true
}

// icmpJudge applies the module's thresholds. With none set the probe
// succeeds when at least one reply arrived (blackbox's rule for one packet).
func icmpJudge(o config.ICMPProbe, res *ICMPResult, rec *icmpRecord) error {
	if res.PacketsReceived == 0 {
		msg := fmt.Sprintf("no reply to any of %d echo requests", res.PacketsSent)
		if res.PacketsSent == 1 {
			msg = "no reply to the echo request"
		}
		if o.Protocol == config.ICMPProtocolTCP {
			msg = fmt.Sprintf("none of %d TCP connects to port %d succeeded", res.PacketsSent, o.Port)
		}
		if rec != nil && rec.firstErr != nil {
			return fmt.Errorf("%s: %w", msg, rec.firstErr)
		}
		return errors.New(msg)
	}
	if t := o.FailIfLossRatioAbove; t != nil && res.LossRatio > *t {
		return fmt.Errorf("packet loss ratio %.4g (%d of %d lost) is above fail_if_loss_ratio_above %g",
			res.LossRatio, res.PacketsSent-res.PacketsReceived, res.PacketsSent, *t)
	}
	if t := o.FailIfRTTMeanAbove; t > 0 && res.RTTMeanSeconds > t.Seconds() {
		return fmt.Errorf("mean round-trip time %s is above fail_if_rtt_mean_above %s", icmpSeconds(res.RTTMeanSeconds), t)
	}
	if t := o.FailIfJitterAbove; t > 0 && res.PacketsReceived >= 2 && res.JitterSeconds > t.Seconds() {
		return fmt.Errorf("jitter %s is above fail_if_jitter_above %s", icmpSeconds(res.JitterSeconds), t)
	}
	return nil
}

func icmpSeconds(s float64) time.Duration {
	return time.Duration(s * float64(time.Second)).Round(time.Microsecond)
}

// icmpRecord is what one probe saw, packet by packet.
type icmpRecord struct {
	sent       int
	rtts       []time.Duration // by sequence number
	got        []bool          // by sequence number
	duplicates int
	foreign    int
	hopLimit   int // of the last reply; -1 unknown
	setup      time.Duration
	firstErr   error // first send/connect error, to explain losses
}

func newICMPRecord(packets int) *icmpRecord {
	return &icmpRecord{rtts: make([]time.Duration, packets), got: make([]bool, packets), hopLimit: -1}
}

// fill computes the statistics into res.
func (r *icmpRecord) fill(res *ICMPResult) {
	res.SetupSeconds = r.setup.Seconds()
	res.PacketsSent = r.sent
	res.Duplicates = r.duplicates
	res.ForeignReplies = r.foreign
	if r.hopLimit >= 0 {
		h := r.hopLimit
		res.HopLimit = &h
	}
	var rtts []time.Duration
	for i, ok := range r.got {
		if ok {
			rtts = append(rtts, r.rtts[i])
		}
	}
	res.PacketsReceived = len(rtts)
	if r.sent > 0 {
		res.LossRatio = float64(r.sent-len(rtts)) / float64(r.sent)
	}
	if len(rtts) == 0 {
		return
	}
	res.RTTsSeconds = make([]float64, 0, min(len(rtts), ICMPMaxRecordedRTTs))
	minRTT, maxRTT := rtts[0], rtts[0]
	var sum, jitter float64
	for i, d := range rtts {
		minRTT, maxRTT = min(minRTT, d), max(maxRTT, d)
		sum += d.Seconds()
		if i > 0 {
			jitter += math.Abs(d.Seconds() - rtts[i-1].Seconds())
		}
		if i < ICMPMaxRecordedRTTs {
			res.RTTsSeconds = append(res.RTTsSeconds, d.Seconds())
		}
	}
	n := float64(len(rtts))
	mean := sum / n
	var sq float64
	for _, d := range rtts {
		sq += (d.Seconds() - mean) * (d.Seconds() - mean)
	}
	res.RTTMinSeconds = minRTT.Seconds()
	res.RTTMaxSeconds = maxRTT.Seconds()
	res.RTTMeanSeconds = mean
	res.RTTStddevSeconds = math.Sqrt(sq / n) // population, as ping's mdev
	if len(rtts) > 1 {
		res.JitterSeconds = jitter / (n - 1)
	}
}

// ping queues the probe's echo requests with the process's echo
// engine (internal/icmpecho): one socket per IP version and mode shared by
// every probe, one receive loop that hands each reply to its probe by the
// token in its payload, one scheduler that sends every request on time,
// and round-trip times from the kernel's receive timestamps. See that
// package for how replies are matched and what of the kernel it uses.
//
// The engine opens its socket on the calling goroutine's thread, so a
// probe run on a thread inside another network namespace (the lab's
// unprivileged test) probes from there.
func (w *icmpWait) ping(o config.ICMPProbe, ip *net.IPAddr, plan icmpPlan) error {
	setupStart := time.Now()
	dst, _ := netip.AddrFromSlice(ip.IP)
	req := icmpecho.Request{
		Dst: dst.Unmap(), Zone: ip.Zone, Packets: plan.packets, Interval: plan.interval, TTL: o.TTL,
		DontFragment: o.DontFragment, StopAt: plan.stopAt, ReplyTimeout: plan.replyTimeout,
	}
	if o.SourceIPAddress != "" {
		src, err := netip.ParseAddr(o.SourceIPAddress)
		if err != nil {
			return fmt.Errorf("source_ip_address %q is not an IP address", o.SourceIPAddress)
		}
		req.Src = src
	}
	req.Size = o.PayloadSize
	if req.Size == 0 {
		req.Size = icmpBlackboxPayload
	}
	if req.Size < icmpecho.MarkLen {
		w.logger.Info("payload_size raised to the minimum (the engine's mark)", "payload_size", o.PayloadSize, "used", icmpecho.MarkLen)
		req.Size = icmpecho.MarkLen
	}
	p, mode, tried, err := icmpStart(o.Socket, req)
	if err != nil {
		return err
	}
	w.probe, w.packets, w.setup = p, int32(plan.packets), time.Since(setupStart)
	// The socket and sizes go in the probe's last line ("probe finished"):
	// a probe's log is read only once it ended, and a line costs as much
	// as an echo.
	if len(tried) > 0 {
		w.logger.Debug("fell back to another ICMP socket", "socket", mode, "tried", tried)
	}
	return nil
}

// icmpPingWait is ping and its wait, for a prober that waits on its own
// goroutine (throughput's latency phases).
func icmpPingWait(ctx context.Context, o config.ICMPProbe, ip *net.IPAddr, plan icmpPlan, res *ICMPResult, logger *slog.Logger) (*icmpRecord, error) {
	w := icmpWait{logger: logger}
	if err := w.ping(o, ip, plan); err != nil {
		return nil, err
	}
	return w.record(w.probe.Wait(ctx), res, o.SourceIPAddress, ip)
}

// record takes what the engine saw of the probe into its record (and its
// socket into res), and explains a probe that could send nothing: src is
// the module's source_ip_address, ip the target or nil to take it from
// w.addr (only that explanation needs it).
func (w *icmpWait) record(r *icmpecho.Result, res *ICMPResult, src string, ip *net.IPAddr) (*icmpRecord, error) {
	rec, logger := newICMPRecord(int(w.packets)), w.logger
	rec.setup = w.setup
	res.SocketMode = string(r.Mode)
	if r.Mode == icmpecho.Privileged {
		res.EchoID = int(r.ID) // a datagram socket's is the kernel's, shared by every probe
	}
	rec.sent = r.Sent
	copy(rec.got, r.Replied)
	copy(rec.rtts, r.RTTs)
	rec.duplicates, rec.foreign, rec.hopLimit = r.Duplicates, r.Foreign, r.HopLimit
	rec.firstErr = r.SendErr
	if rec.firstErr == nil {
		rec.firstErr = r.ICMPErr
	}
	if r.SendErr != nil {
		logger.Warn("sending echo requests failed", "sent", r.Sent, "of", int(w.packets), "err", r.SendErr)
	}
	if r.ICMPErr != nil {
		logger.Info("ICMP error about an echo request", "err", r.ICMPErr)
	}
	if r.Sent == 0 && r.SendErr != nil {
		// A send refused by this host's routing table (an unreachable,
		// prohibit or blackhole route) fails with a bare errno that says
		// nothing of routes, EACCES as if permission were missing: look
		// the route up to say which it is.
		var from net.Addr
		if a, err := netip.ParseAddr(src); err == nil { // ping parsed it; "" is none
			from = &net.IPAddr{IP: a.AsSlice()}
		}
		if ip == nil {
			ip = icmpIPAddr(w.addr)
		}
		if err := localRoute(from, ip); err != nil {
			return rec, fmt.Errorf("sending echo request: %w", err)
		}
		if sendRefused(r.SendErr) {
			return rec, fmt.Errorf("%s: %w", SendRefusedWords, r.SendErr)
		}
		return rec, fmt.Errorf("sending echo request: %w", r.SendErr)
	}
	return rec, nil
}

// icmpStart starts the probe on a socket of the module's mode. auto tries
// an unprivileged datagram socket first (as blackbox_exporter does), then
// a raw one; only a refusal (EPERM, EACCES) moves on. The errors say what
// to change.
func icmpStart(want string, req icmpecho.Request) (*icmpecho.Probe, string, []string, error) {
	start := func(mode string) (*icmpecho.Probe, error) {
		req.Mode = icmpecho.Mode(mode)
		return icmpecho.Start(req)
	}
	switch want {
	case config.ICMPSocketPrivileged:
		p, err := start(ICMPSocketPrivileged)
		if errno := icmpRefusal(err); errno != nil {
			err = icmpPrivilegedError(errno)
		}
		return p, ICMPSocketPrivileged, nil, err
	case config.ICMPSocketUnprivileged:
		p, err := start(ICMPSocketUnprivileged)
		if errno := icmpRefusal(err); errno != nil {
			err = icmpUnprivilegedError(errno)
		}
		return p, ICMPSocketUnprivileged, nil, err
	}
	p, err := start(ICMPSocketUnprivileged)
	uerr := icmpRefusal(err)
	if uerr == nil {
		return p, ICMPSocketUnprivileged, nil, err
	}
	tried := []string{fmt.Sprintf("unprivileged: %v", uerr)}
	p, err = start(ICMPSocketPrivileged)
	perr := icmpRefusal(err)
	if perr == nil {
		return p, ICMPSocketPrivileged, tried, err
	}
	return nil, "", tried, fmt.Errorf("no ICMP socket is allowed (raw: %w; datagram: %w): %s; %s; or use protocol: tcp",
		perr, uerr, icmpPrivilegedFix(), icmpUnprivilegedFix())
}

// icmpRefusal returns the errno of a socket the kernel refused to open
// (EPERM, EACCES: not allowed), else nil.
func icmpRefusal(err error) error {
	if err == nil {
		return nil
	}
	var se *icmpecho.SocketError
	if errors.As(err, &se) && (errors.Is(se.Err, syscall.EPERM) || errors.Is(se.Err, syscall.EACCES)) {
		return se.Err
	}
	return nil
}
