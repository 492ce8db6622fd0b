package prober

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/isp-checker/isp-checker/config"
)

// tcpPing is the icmp prober's protocol: tcp. Each "packet" is a TCP
// connect to ip:port started on the same schedule as echo requests; its
// round-trip time is the connect time (SYN to SYN-ACK, as the kernel sees
// it), and a connect that fails (refused, unreachable, timed out) is a lost
// packet. Connects overlap when they take longer than the interval. Every
// connect goes through the policy's dialer. (It takes the Request's parts,
// not the Request: a Request is 2.8 kB, and a copy of it in the caller's
// frame is stack every waiting icmp probe carries.)
func icmpTCPPing(ctx context.Context, policy *Policy, logger *slog.Logger, o config.ICMPProbe, ip *net.IPAddr, plan icmpPlan) (*icmpRecord, error) {
	setupStart := time.Now()
	network := "tcp4"
	if ip.IP.To4() == nil {
		network = "tcp6"
	}
	dialer, err := policy.Dialer(network, o.SourceIPAddress)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(ip.String(), strconv.Itoa(o.Port))
	rec := newICMPRecord(plan.packets)
	rec.setup = time.Since(setupStart)
	logger.Info("connecting", "address", addr, "packets", plan.packets, "interval", plan.interval)

	runCtx, cancel := context.WithDeadline(ctx, plan.stopAt)
	defer cancel()

	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs = map[string]int{}
	)
	start := time.Now()
	tick := time.NewTimer(0)
	defer tick.Stop()
	for seq := 0; seq < plan.packets; seq++ {
		if seq > 0 {
			tick.Reset(time.Until(start.Add(time.Duration(seq) * plan.interval)))
		}
		select {
		case <-runCtx.Done():
		case <-tick.C:
		}
		if runCtx.Err() != nil {
			break
		}
		rec.sent++
		wg.Add(1)
		go func() {
			defer wg.Done()
			rtt, err := connectRTT(runCtx, dialer, network, addr)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[err.Error()]++
				if rec.firstErr == nil {
					rec.firstErr = err
				}
				logger.Debug("connect failed", "seq", seq, "err", err)
				return
			}
			rec.got[seq] = true
			rec.rtts[seq] = rtt
		}()
	}
	if plan.replyTimeout > 0 {
		t := time.AfterFunc(plan.replyTimeout, cancel)
		defer t.Stop()
	}
	wg.Wait()
	for e, n := range errs {
		logger.Warn("connects failed", "count", n, "err", e)
	}
	if errors.Is(rec.firstErr, ErrDenied) {
		return rec, rec.firstErr
	}
	return rec, nil
}

// errNoConnectAnswer: the connect got no answer before its context ended.
var errNoConnectAnswer = errors.New("no answer before the probe ended")

// connectRTT times one TCP connect, SYN to SYN-ACK, and closes the
// connection. It is the round trip of the tcp ping and of the throughput
// prober's latency samples.
func connectRTT(ctx context.Context, d *net.Dialer, network, addr string) (time.Duration, error) {
	t0 := time.Now()
	conn, err := d.DialContext(ctx, network, addr)
	rtt := time.Since(t0)
	if err != nil {
		if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			err = errNoConnectAnswer
		}
		return rtt, err
	}
	_ = conn.Close()
	return rtt, nil
}
