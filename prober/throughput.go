package prober

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/isp-checker/isp-checker/config"
)

// ThroughputMaxRecordedRTTs caps the latency samples kept in a result.
const ThroughputMaxRecordedRTTs = 1000

// Stop reasons of a transfer (ThroughputResult.StopReason).
const (
	StopDuration = "duration"  // ran for the planned duration
	StopMaxBytes = "max_bytes" // moved max_bytes
	StopError    = "error"     // a connection failed
	StopDeadline = "deadline"  // the probe's deadline came first
)

// Timing of a throughput probe.
const (
	// tpSampleEvery is how often the bytes moved so far are recorded.
	tpSampleEvery = 50 * time.Millisecond
	// tpLatencyGrace is how long unanswered latency samples may still take
	// once sending has ended (after the idle samples, after the transfer).
	tpLatencyGrace = time.Second
	// tpCloseReserve is kept after the transfer to close connections.
	tpCloseReserve = 200 * time.Millisecond
	// tpMinWindow is the shortest steady window the rate is measured over.
	tpMinWindow = 500 * time.Millisecond
	// tpReadChunk is the read (download) and write (upload) size.
	tpReadChunk = 64 << 10
)

// ThroughputResult is the outcome of a throughput probe: an HTTP transfer
// over Connections parallel connections, and the latency to the target's
// host before (idle) and during (loaded) it. Times are in seconds.
type ThroughputResult struct {
	Common
	// URL is the target as probed (http:// added when it had no scheme).
	URL       string `json:"url,omitempty"`
	Direction string `json:"direction"`
	// Connections is the number of parallel transfer streams;
	// ConnectionsOpened counts the TCP connections they opened (more than
	// Connections when a server closes connections between requests).
	Connections       int `json:"connections"`
	ConnectionsOpened int `json:"connections_opened"`
	Requests          int `json:"requests"`
	// StatusCode is the last HTTP status received (the failing one when a
	// status failed the probe).
	StatusCode int `json:"status_code,omitempty"`
	// Bytes is the payload moved: response body bytes read (download), or
	// request body bytes the server acknowledged at the TCP level (upload,
	// on Linux; elsewhere the bytes written).
	Bytes int64 `json:"bytes"`
	// BytesPerSecond is the rate over the steady part of the transfer: the
	// bytes moved between RampUpSeconds after the start and the end,
	// divided by that window (RateWindowSeconds). When the transfer was too
	// short for that, it is Bytes over TransferSeconds.
	BytesPerSecond    float64 `json:"bytes_per_second"`
	TransferSeconds   float64 `json:"transfer_seconds"`
	RateWindowSeconds float64 `json:"rate_window_seconds"`
	RampUpSeconds     float64 `json:"ramp_up_seconds"`
	// PlannedSeconds is the duration the transfer was planned to run: the
	// module's, or less when it did not fit in the timeout.
	PlannedSeconds float64 `json:"planned_seconds"`
	StopReason     string  `json:"stop_reason,omitempty"`
	// WaitSeconds is how long the probe waited for another throughput
	// probe to finish (see SetThroughputConcurrency).
	WaitSeconds float64 `json:"wait_seconds"`

	// LatencyProtocol is tcp, icmp or none.
	LatencyProtocol string `json:"latency_protocol"`
	// LatencyIdleSeconds and LatencyLoadedSeconds are medians of the
	// answered samples; ResponsivenessRPM is 60 s over the 95% trimmed mean
	// of the loaded samples (round trips per minute, after the IETF
	// responsiveness draft). Zero when there was no answered sample.
	LatencyIdleSeconds   float64 `json:"latency_idle_seconds"`
	LatencyLoadedSeconds float64 `json:"latency_loaded_seconds"`
	ResponsivenessRPM    float64 `json:"responsiveness_rpm"`
	LatencyIdleSamples   int     `json:"latency_idle_samples"`
	LatencyIdleLost      int     `json:"latency_idle_lost"`
	LatencyLoadedSamples int     `json:"latency_loaded_samples"`
	LatencyLoadedLost    int     `json:"latency_loaded_lost"`
	// The answered samples, in the order they were sent (at most
	// ThroughputMaxRecordedRTTs each).
	LatencyIdleRTTsSeconds   []float64 `json:"latency_idle_rtts_seconds,omitempty"`
	LatencyLoadedRTTsSeconds []float64 `json:"latency_loaded_rtts_seconds,omitempty"`
}

// throughputProbe is one run of the throughput prober.
type throughputProbe struct {
	req    Request
	cfg    config.ThroughputProbe
	logger *slog.Logger
	res    *ThroughputResult
}

// ProbeThroughput is the throughput prober: download and upload rates
// against a speed-test server, and the latency under load.
func ProbeThroughput(ctx context.Context, req *Request) Result {
	p := &throughputProbe{req: *req, cfg: req.Module.Throughput, logger: req.Logger, res: &ThroughputResult{}}
	p.res.Direction = p.cfg.Direction
	p.res.Connections = p.cfg.Connections
	p.res.LatencyProtocol = p.cfg.LatencyProtocol
	if err := p.run(ctx); err != nil {
		switch {
		case p.res.Error != "": // resolve fails the result itself
		case errors.Is(err, ErrDenied): // a redirect, or a latency sample's address
			p.res.FailDenied(p.logger, err)
		default:
			p.res.FailStep(p.logger, "throughput probe failed", err)
		}
		return p.res
	}
	p.res.Success = true
	return p.res
}

// reserves are the times planned around the transfer: the idle phase when
// its samples are answered at once (it takes longer only when they are
// not, and the transfer is then planned shorter), and the time kept after
// the transfer for the last loaded samples and closing.
func (p *throughputProbe) reserves() (idle, end time.Duration) {
	end = tpCloseReserve
	if p.cfg.LatencyProtocol != config.LatencyProtocolNone {
		idle = time.Duration(p.cfg.IdleLatencySamples-1)*p.cfg.LatencyInterval + tpCloseReserve
		end = tpLatencyGrace
	}
	return idle, end
}

// minTransfer is the shortest transfer worth running: the ramp-up and a
// steady window after it.
func (p *throughputProbe) minTransfer() time.Duration { return p.cfg.RampUp + tpMinWindow }

func (p *throughputProbe) run(ctx context.Context) error {
	o := p.cfg
	start := time.Now()
	deadline, _ := ctx.Deadline() // Run sets one
	margin := min(deadline.Sub(start)/10, 300*time.Millisecond)
	runCtx, cancel := context.WithDeadline(ctx, deadline.Add(-margin))
	defer cancel()

	u, err := targetURL(p.req.Target)
	if err != nil {
		return fmt.Errorf("could not parse target URL: %w", err)
	}
	p.res.URL = u.Redacted()
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	ip, ok := p.req.resolve(runCtx, &p.res.Common, host, o.IPOptions)
	if !ok {
		return errors.New(p.res.Error)
	}

	idleReserve, endReserve := p.reserves()
	need := idleReserve + p.minTransfer() + endReserve
	release, err := takeThroughputSlot(runCtx, deadline.Add(-margin-need), p.logger,
		"waited for another throughput probe to finish", &p.res.WaitSeconds)
	if err != nil {
		return err
	}
	defer release()

	stopAt := deadline.Add(-margin)
	// What the transfer gets: checked now against the idle phase's worst
	// case, and fixed once the idle phase is over.
	transferTime := func(idle time.Duration) (time.Duration, error) {
		avail := time.Until(stopAt) - idle - endReserve
		d := min(o.Duration, avail)
		if d < p.minTransfer() {
			return 0, fmt.Errorf("the probe's timeout leaves %s for the transfer, less than ramp_up %s plus %s to measure "+
				"(raise the module's timeout or the scrape timeout, or lower duration, ramp_up, idle_latency_samples or latency_interval)",
				max(avail, 0).Round(time.Millisecond), o.RampUp, tpMinWindow)
		}
		return d, nil
	}
	if _, err := transferTime(idleReserve); err != nil {
		return err
	}
	p.res.RampUpSeconds = o.RampUp.Seconds()

	// The transfer connects to the address just resolved; the name goes in
	// the Host header and the TLS server name.
	hostHeader := u.Host
	if p.req.Hostname != "" {
		hostHeader = p.req.Hostname
	}
	u.Host = net.JoinHostPort(ip.IP.String(), port)
	if ip.Zone != "" {
		u.Host = "[" + ip.IP.String() + "%25" + url.PathEscape(ip.Zone) + "]:" + port
	}
	tr, err := p.newTransfer(runCtx, u, hostHeader, hostOnly(hostHeader))
	if err != nil {
		return fmt.Errorf("error generating HTTP client: %w", err)
	}
	defer tr.close()

	sampler, err := p.newLatencySampler(ip, port)
	if err != nil {
		return err
	}

	// Idle latency, before any load.
	var idleRec *latencyRecord
	if sampler != nil {
		p.logger.Info("measuring idle latency", "protocol", o.LatencyProtocol, "samples", o.IdleLatencySamples, "interval", o.LatencyInterval)
		idleRec, err = sampler.run(runCtx, latencyPhase{start: time.Now(), interval: o.LatencyInterval, max: o.IdleLatencySamples, grace: tpLatencyGrace})
		p.fillLatency(idleRec, nil)
		if err != nil {
			return fmt.Errorf("measuring idle latency: %w", err)
		}
		if len(idleRec.rtts) == 0 {
			return p.noLatency("idle", idleRec)
		}
	}

	duration, err := transferTime(0)
	if err != nil {
		return err
	}
	if duration < o.Duration {
		p.logger.Warn("duration does not fit in the probe's timeout; shortening the transfer",
			"duration", o.Duration, "transfer", duration.Round(time.Millisecond), "timeout_seconds", deadline.Sub(start).Seconds())
	}
	p.res.PlannedSeconds = duration.Seconds()

	// The transfer, with loaded latency sampled once the ramp-up is over.
	stopLatency := make(chan struct{})
	var (
		loadedRec *latencyRecord
		loadedErr error
		latWG     sync.WaitGroup
	)
	transferStart := time.Now()
	if sampler != nil {
		window := duration - o.RampUp
		ph := latencyPhase{
			start:    transferStart.Add(o.RampUp),
			interval: o.LatencyInterval,
			max:      int(window/o.LatencyInterval) + 1,
			stop:     stopLatency,
			grace:    tpLatencyGrace,
		}
		latWG.Add(1)
		go func() {
			defer latWG.Done()
			loadedRec, loadedErr = sampler.run(runCtx, ph)
		}()
	}
	p.logger.Info("starting transfer", "direction", o.Direction, "url", p.res.URL, "connections", o.Connections,
		"duration", duration.Round(time.Millisecond), "max_bytes", int64(o.MaxBytes))
	terr := tr.run(runCtx, transferStart, duration, stopLatency)
	latWG.Wait()

	p.fillTransfer(tr)
	if sampler != nil {
		p.fillLatency(idleRec, loadedRec)
	}
	p.logger.Info("transfer finished", "stop_reason", p.res.StopReason, "bytes", p.res.Bytes,
		"bytes_per_second", p.res.BytesPerSecond, "transfer_seconds", p.res.TransferSeconds,
		"rate_window_seconds", p.res.RateWindowSeconds, "requests", p.res.Requests, "connections_opened", p.res.ConnectionsOpened)
	if sampler != nil {
		p.logger.Info("latency", "idle_seconds", p.res.LatencyIdleSeconds, "loaded_seconds", p.res.LatencyLoadedSeconds,
			"responsiveness_rpm", p.res.ResponsivenessRPM, "idle_samples", p.res.LatencyIdleSamples, "idle_lost", p.res.LatencyIdleLost,
			"loaded_samples", p.res.LatencyLoadedSamples, "loaded_lost", p.res.LatencyLoadedLost)
	}
	if terr != nil {
		return terr
	}
	if p.res.Bytes == 0 {
		return errors.New("no bytes were transferred")
	}
	if sampler != nil {
		if loadedErr != nil {
			return fmt.Errorf("measuring loaded latency: %w", loadedErr)
		}
		if loadedRec != nil && loadedRec.sent > 0 && len(loadedRec.rtts) == 0 {
			return p.noLatency("loaded", loadedRec)
		}
		if loadedRec == nil || loadedRec.sent == 0 {
			p.logger.Warn("the transfer ended before ramp_up was over: no loaded latency sample was taken")
		}
	}
	return nil
}

func (p *throughputProbe) noLatency(phase string, rec *latencyRecord) error {
	msg := fmt.Sprintf("none of %d %s latency samples (%s) was answered", rec.sent, phase, p.cfg.LatencyProtocol)
	if phase == "loaded" {
		msg += fmt.Sprintf(" within %s after the transfer", tpLatencyGrace)
	}
	if rec.firstErr != nil {
		return fmt.Errorf("%s: %w", msg, rec.firstErr)
	}
	if p.cfg.LatencyProtocol == config.LatencyProtocolICMP {
		msg += " (ping blocked? try latency_protocol: tcp)"
	}
	return errors.New(msg)
}

func (p *throughputProbe) newLatencySampler(ip *net.IPAddr, urlPort string) (latencySampler, error) {
	switch p.cfg.LatencyProtocol {
	case config.LatencyProtocolNone:
		return nil, nil
	case config.LatencyProtocolICMP:
		o := config.DefaultICMPProbe()
		o.SourceIPAddress = p.cfg.SourceIPAddress
		return &icmpLatency{opts: o, ip: ip, logger: p.logger}, nil
	}
	port := urlPort
	if p.cfg.LatencyPort != 0 {
		port = strconv.Itoa(p.cfg.LatencyPort)
	}
	network := "tcp4"
	if ip.IP.To4() == nil {
		network = "tcp6"
	}
	d, err := p.req.Policy.Dialer(network, p.cfg.SourceIPAddress)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(ip.String(), port)
	p.logger.Info("latency samples are TCP connects", "address", addr)
	return &tcpLatency{dialer: d, network: network, addr: addr, logger: p.logger}, nil
}

func (p *throughputProbe) fillLatency(idle, loaded *latencyRecord) {
	r := p.res
	if idle != nil {
		r.LatencyIdleSamples, r.LatencyIdleLost = len(idle.rtts), idle.lost()
		r.LatencyIdleSeconds = median(idle.rtts).Seconds()
		r.LatencyIdleRTTsSeconds = secondsList(idle.rtts)
	}
	if loaded != nil {
		r.LatencyLoadedSamples, r.LatencyLoadedLost = len(loaded.rtts), loaded.lost()
		r.LatencyLoadedSeconds = median(loaded.rtts).Seconds()
		r.LatencyLoadedRTTsSeconds = secondsList(loaded.rtts)
		if tm := trimmedMean(loaded.rtts, 0.95); tm > 0 {
			r.ResponsivenessRPM = 60 / tm.Seconds()
		}
	}
}

func secondsList(ds []time.Duration) []float64 {
	if len(ds) == 0 {
		return nil
	}
	out := make([]float64, 0, min(len(ds), ThroughputMaxRecordedRTTs))
	for _, d := range ds[:min(len(ds), ThroughputMaxRecordedRTTs)] {
		out = append(out, d.Seconds())
	}
	return out
}

func (p *throughputProbe) fillTransfer(tr *transfer) {
	r := p.res
	r.StopReason = tr.stopReason
	r.Requests = int(tr.requests.Load())
	r.ConnectionsOpened = tr.conns.opened()
	r.StatusCode = int(tr.status.Load())
	if len(tr.samples) == 0 {
		return
	}
	last := tr.samples[len(tr.samples)-1]
	r.Bytes = last.bytes
	r.TransferSeconds = last.at.Seconds()
	r.BytesPerSecond, r.RateWindowSeconds = steadyRate(tr.samples, p.cfg.RampUp)
}

// progress is the bytes moved by a moment of the transfer.
type progress struct {
	at    time.Duration // since the transfer started
	bytes int64
}

// steadyRate is the rate between the first sample at or after rampUp and
// the last one, when that window is at least tpMinWindow long; otherwise
// the average over the whole transfer.
//
// Leaving the ramp-up out matters: the first part of a transfer is spent
// connecting, sending requests and in TCP slow start while the bottleneck
// queue fills, so counting it makes the rate low by an amount that depends
// on the round-trip time, not on the link.
func steadyRate(samples []progress, rampUp time.Duration) (rate float64, window float64) {
	if len(samples) == 0 {
		return 0, 0
	}
	last := samples[len(samples)-1]
	for _, s := range samples {
		if s.at >= rampUp {
			if w := last.at - s.at; w >= tpMinWindow {
				return float64(last.bytes-s.bytes) / w.Seconds(), w.Seconds()
			}
			break
		}
	}
	if last.at <= 0 {
		return 0, 0
	}
	return float64(last.bytes) / last.at.Seconds(), last.at.Seconds()
}
