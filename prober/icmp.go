package prober

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"time"

	probing "github.com/prometheus-community/pro-bing"

	"github.com/isp-checker/isp-checker/config"
)

func init() { Register("icmp", probeICMP) }

// ICMPMaxRecordedRTTs caps ICMPResult.RTTsSeconds.
const ICMPMaxRecordedRTTs = 1000

// icmpDefaultBudget is the time budget of a probe whose context has no
// deadline (the /probe handler and the command line always set one).
const icmpDefaultBudget = 10 * time.Second

// icmpMinPayload is pro-bing's smallest echo payload: an 8-byte send
// timestamp and a 16-byte tracker UUID.
const icmpMinPayload = 24

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

// icmpOptions returns the module's options with defaults for zero values,
// so a Module built in code (not from YAML) behaves like a loaded one.
func icmpOptions(o config.ICMPProbe) config.ICMPProbe {
	d := config.DefaultICMPProbe()
	if o.Packets <= 0 {
		o.Packets = d.Packets
	}
	if o.Interval <= 0 {
		o.Interval = d.Interval
	}
	o.Interval = max(o.Interval, config.ICMPMinInterval)
	if o.Socket == "" {
		o.Socket = d.Socket
	}
	if o.Protocol == "" {
		o.Protocol = d.Protocol
	}
	if o.TTL <= 0 {
		o.TTL = d.TTL
	}
	return o
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
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = now.Add(icmpDefaultBudget)
	}
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

func probeICMP(ctx context.Context, req Request) Result {
	o := icmpOptions(req.Module.ICMP)
	logger := req.Logger
	res := &ICMPResult{Protocol: o.Protocol}
	ip, err := ResolveTarget(ctx, &res.Common, req.Target, o.IPProtocol, o.IPProtocolFallback, req.Policy, logger)
	if err != nil {
		res.Fail(logger, "cannot probe target", err)
		return res
	}
	plan := icmpPlanProbe(ctx, o, time.Now(), logger)
	res.PacketsPlanned = plan.packets

	var rec *icmpRecord
	if o.Protocol == config.ICMPProtocolTCP {
		res.Port = o.Port
		rec, err = icmpTCPPing(ctx, req, o, ip, plan, res)
	} else {
		rec, err = icmpPing(ctx, o, ip, plan, res, logger)
	}
	if rec != nil {
		rec.fill(res)
	}
	if err != nil {
		res.Fail(logger, "cannot probe target", err)
		return res
	}
	logger.Info("probe finished", "protocol", o.Protocol, "sent", res.PacketsSent, "received", res.PacketsReceived,
		"duplicates", res.Duplicates, "loss_ratio", res.LossRatio, "rtt_mean_seconds", res.RTTMeanSeconds,
		"jitter_seconds", res.JitterSeconds)
	if err := icmpJudge(o, res, rec); err != nil {
		res.Fail(logger, err.Error(), nil)
		res.Reason = ReasonOf(err) // the first send error, e.g. no route
		return res
	}
	res.Success = true
	return res
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

// icmpPing sends echo requests with pro-bing.
//
// How replies are matched to this probe (pro-bing v0.9.1): each Pinger owns
// its socket and puts a random 16-byte tracker UUID after the send
// timestamp in every payload. A raw (privileged) socket sees every echo
// reply of the host, so pro-bing attaches a BPF filter that passes only echo
// replies carrying the Pinger's identifier, checks the identifier again, then
// keeps only replies whose UUID is the Pinger's and whose sequence number is
// still awaited (a second reply to a sequence is a duplicate). The
// identifier comes from icmpIDs, so it is unique among this process's
// probes. An unprivileged datagram socket gets its identifier from the
// kernel (the socket's "port", unique per host) and the kernel delivers it
// only the replies carrying it; pro-bing then skips its identifier check
// but the UUID check still applies. Replies from another address than the
// target are not counted (ForeignReplies).
//
// Costs of that design, measured in bench/icmp: every raw socket gets a copy
// of every ICMP packet the host receives, dropped by its BPF filter, so the
// kernel's work per echo grows with the number of concurrent raw-socket
// probes; and a new raw socket receives everything until pro-bing attaches
// its filter, so on a badly overloaded machine its queue can fill with other
// probes' packets and drop its own first reply. Unprivileged sockets have
// neither problem, which is why socket: auto prefers them.
func icmpPing(ctx context.Context, o config.ICMPProbe, ip *net.IPAddr, plan icmpPlan, res *ICMPResult, logger *slog.Logger) (*icmpRecord, error) {
	setupStart := time.Now()
	// A destination this host's routing table refuses ends the probe before
	// pro-bing sends: behind a prohibit route every send fails with EACCES,
	// which pro-bing v0.9.1 takes for a broadcast address and retries
	// forever, deaf to ctx.
	var src net.Addr
	if s := net.ParseIP(o.SourceIPAddress); s != nil {
		src = &net.IPAddr{IP: s}
	}
	if err := localRoute(src, ip); err != nil {
		return nil, err
	}
	ipv6 := ip.IP.To4() == nil
	mode, tried, err := icmpSocketMode(o.Socket, ipv6)
	if err != nil {
		return nil, err
	}
	res.SocketMode = mode
	privileged := mode == ICMPSocketPrivileged
	logger.Info("using ICMP socket", "mode", mode, "socket_option", o.Socket, "tried", tried)

	p := probing.New(ip.String())
	p.SetIPAddr(ip)
	p.SetPrivileged(privileged)
	p.SetLogger(icmpProbingLogger{logger})
	if privileged {
		id, err := icmpIDs.acquire()
		if err != nil {
			return nil, err
		}
		defer icmpIDs.release(id)
		p.SetID(int(id))
		res.EchoID = int(id)
	}
	size := o.PayloadSize
	if size == 0 {
		size = icmpBlackboxPayload
	}
	if size < icmpMinPayload {
		logger.Info("payload_size raised to the minimum (timestamp and tracker)", "payload_size", o.PayloadSize, "used", icmpMinPayload)
		size = icmpMinPayload
	}
	p.Size = size
	p.Count = plan.packets
	p.Interval = plan.interval
	p.TTL = o.TTL
	p.Source = o.SourceIPAddress
	p.SetDoNotFragment(o.DontFragment)
	p.RecordRtts, p.RecordTTLs = false, false

	runCtx, cancel := context.WithDeadline(ctx, plan.stopAt)
	defer cancel()

	// The callbacks below run on pro-bing's goroutines (OnSetup on this
	// one, the others on its run loop, one at a time); RunWithContext waits
	// for them, so rec is safe to read once it has returned.
	rec := newICMPRecord(plan.packets)
	setupDone := false
	var replyTimer *time.Timer
	p.OnSetup = func() {
		setupDone = true
		rec.setup = time.Since(setupStart)
		logger.Info("sending echo requests", "packets", plan.packets, "interval", plan.interval, "id", res.EchoID, "size", size)
	}
	p.OnSend = func(*probing.Packet) {
		rec.sent++
		if rec.sent == plan.packets && plan.replyTimeout > 0 {
			replyTimer = time.AfterFunc(plan.replyTimeout, cancel)
		}
	}
	p.OnSendError = func(pkt *probing.Packet, err error) {
		logger.Warn("sending echo request failed", "seq", pkt.Seq, "err", err)
		if rec.firstErr == nil {
			rec.firstErr = err
		}
	}
	p.OnRecv = func(pkt *probing.Packet) {
		if pkt.Seq < 0 || pkt.Seq >= len(rec.got) {
			return // cannot happen: pro-bing only passes awaited sequences
		}
		if !pkt.IPAddr.IP.Equal(ip.IP) {
			rec.foreign++
			logger.Debug("echo reply from another address", "from", pkt.Addr, "seq", pkt.Seq)
			return
		}
		rec.got[pkt.Seq] = true
		rec.rtts[pkt.Seq] = pkt.Rtt
		if pkt.TTL >= 0 {
			rec.hopLimit = pkt.TTL
		}
	}
	p.OnDuplicateRecv = func(*probing.Packet) { rec.duplicates++ }

	err = p.RunWithContext(runCtx)
	if replyTimer != nil {
		replyTimer.Stop()
	}
	if !setupDone {
		rec.setup = time.Since(setupStart)
		if err == nil {
			err = errors.New("ICMP socket setup did not complete")
		}
		return rec, fmt.Errorf("setting up %s ICMP socket: %w", mode, err)
	}
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		if rec.sent == 0 {
			return rec, fmt.Errorf("sending echo request: %w", err)
		}
		logger.Warn("echo run ended early", "err", err)
		if rec.firstErr == nil {
			rec.firstErr = err
		}
	}
	return rec, nil
}

// icmpProbingLogger sends pro-bing's log lines to the probe's logger. Its
// "Fatalf" is not fatal: pro-bing uses it for a packet it could not send or
// parse, and goes on.
type icmpProbingLogger struct{ l *slog.Logger }

func (l icmpProbingLogger) Fatalf(format string, v ...any) { l.log(slog.LevelWarn, format, v) }
func (l icmpProbingLogger) Errorf(format string, v ...any) { l.log(slog.LevelWarn, format, v) }
func (l icmpProbingLogger) Warnf(format string, v ...any)  { l.log(slog.LevelWarn, format, v) }
func (l icmpProbingLogger) Infof(format string, v ...any)  { l.log(slog.LevelDebug, format, v) }
func (l icmpProbingLogger) Debugf(format string, v ...any) { l.log(slog.LevelDebug, format, v) }

func (l icmpProbingLogger) log(level slog.Level, format string, v []any) {
	l.l.Log(context.Background(), level, "pro-bing", "detail", fmt.Sprintf(format, v...))
}
