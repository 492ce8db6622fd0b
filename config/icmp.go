package config

import (
	"errors"
	"fmt"
	"time"
)

// ICMPProbe is blackbox_exporter's icmp prober schema plus isp-checker's
// multi-packet options. A blackbox module (none of the new options) sends one
// echo request and succeeds when its reply arrives, as blackbox does.
type ICMPProbe struct {
	IPOptions    `yaml:",inline"`
	PayloadSize  int  `yaml:"payload_size,omitempty"`
	DontFragment bool `yaml:"dont_fragment,omitempty"`
	TTL          int  `yaml:"ttl,omitempty"`

	// isp-checker's own options (none of them exists in blackbox_exporter;
	// tagged isp:"own", see omitOwnDefaults).

	// Packets is the number of echo requests (or TCP connects) per probe.
	// Default 1, blackbox's behaviour.
	Packets int `yaml:"packets,omitempty" isp:"own"`
	// Interval is the time between two packets. Default 1s (ping's).
	Interval time.Duration `yaml:"interval,omitempty" isp:"own"`
	// ReplyTimeout is how long to wait for replies after the last packet
	// was sent. 0 (the default) waits until the probe's deadline, as
	// blackbox does; set it so lossy multi-packet probes end early.
	ReplyTimeout time.Duration `yaml:"reply_timeout,omitempty" isp:"own"`
	// Socket chooses the ICMP socket: auto (the default: unprivileged
	// datagram ICMP when net.ipv4.ping_group_range allows it, else a raw
	// socket), privileged (raw socket, needs CAP_NET_RAW) or unprivileged.
	Socket string `yaml:"socket,omitempty" isp:"own"`
	// Protocol is icmp (the default) or tcp: the same statistics from TCP
	// connect times to Port, for targets that block ICMP.
	Protocol string `yaml:"protocol,omitempty" isp:"own"`
	// Port is the TCP port for protocol: tcp.
	Port int `yaml:"port,omitempty" isp:"own"`

	// FailIfLossRatioAbove fails the probe when the loss ratio (0–1) is
	// above it. Unset: the probe succeeds when at least one reply arrived.
	FailIfLossRatioAbove *float64 `yaml:"fail_if_loss_ratio_above,omitempty" isp:"own"`
	// FailIfRTTMeanAbove fails the probe when the mean round-trip time is
	// above it. 0 (unset) never fails.
	FailIfRTTMeanAbove time.Duration `yaml:"fail_if_rtt_mean_above,omitempty" isp:"own"`
	// FailIfJitterAbove fails the probe when the jitter (mean absolute
	// difference of consecutive round-trip times) is above it. 0 (unset)
	// never fails; it needs two replies to be judged.
	FailIfJitterAbove time.Duration `yaml:"fail_if_jitter_above,omitempty" isp:"own"`
}

// DefaultICMPTTL is the IP TTL of echo requests when none is configured.
const DefaultICMPTTL = 64

// ICMP option limits and values.
const (
	ICMPMaxPackets         = 10000
	ICMPMinInterval        = time.Millisecond // faster is a flood, not a measurement
	DefaultICMPInterval    = time.Second
	ICMPSocketAuto         = "auto"
	ICMPSocketPrivileged   = "privileged"
	ICMPSocketUnprivileged = "unprivileged"
	ICMPProtocolICMP       = "icmp"
	ICMPProtocolTCP        = "tcp"
)

// DefaultICMPProbe returns the icmp defaults (blackbox's, and one packet).
func DefaultICMPProbe() ICMPProbe {
	return ICMPProbe{
		IPOptions: DefaultIPOptions(),
		TTL:       DefaultICMPTTL,
		Packets:   1,
		Interval:  DefaultICMPInterval,
		Socket:    ICMPSocketAuto,
		Protocol:  ICMPProtocolICMP,
	}
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *ICMPProbe) UnmarshalYAML(unmarshal func(any) error) error {
	*s = DefaultICMPProbe()
	type icmpProbe ICMPProbe
	if err := unmarshal((*icmpProbe)(s)); err != nil {
		return err
	}
	if s.TTL < 0 {
		return errors.New(`"ttl" cannot be negative`)
	}
	if s.TTL > 255 {
		return errors.New(`"ttl" cannot exceed 255`)
	}
	if s.TTL == 0 {
		s.TTL = DefaultICMPTTL // 0 is "not set", as in blackbox_exporter
	}
	if s.PayloadSize < 0 || s.PayloadSize > 65500 {
		return fmt.Errorf("payload_size %d is out of range 0-65500", s.PayloadSize)
	}
	if err := s.check(); err != nil {
		return err
	}
	return s.validate()
}

// validate checks isp-checker's own options.
func (s *ICMPProbe) validate() error {
	if s.Packets < 1 || s.Packets > ICMPMaxPackets {
		return fmt.Errorf("packets %d is out of range 1-%d", s.Packets, ICMPMaxPackets)
	}
	if s.Interval < ICMPMinInterval {
		return fmt.Errorf("interval %s is below the minimum of %s", s.Interval, ICMPMinInterval)
	}
	if s.ReplyTimeout < 0 {
		return errors.New("reply_timeout cannot be negative")
	}
	switch s.Socket {
	case ICMPSocketAuto, ICMPSocketPrivileged, ICMPSocketUnprivileged:
	default:
		return fmt.Errorf("socket %q is not valid (auto, privileged or unprivileged)", s.Socket)
	}
	switch s.Protocol {
	case ICMPProtocolICMP:
		if s.Port != 0 {
			return errors.New("port is only used with protocol: tcp")
		}
	case ICMPProtocolTCP:
		if s.Port < 1 || s.Port > 65535 {
			return fmt.Errorf("protocol tcp needs a port in 1-65535 (port: %d)", s.Port)
		}
		if s.Socket != ICMPSocketAuto {
			return errors.New("socket is only used with protocol: icmp")
		}
		if s.PayloadSize != 0 || s.DontFragment {
			return errors.New("payload_size and dont_fragment are only used with protocol: icmp")
		}
	default:
		return fmt.Errorf("protocol %q is not valid (icmp or tcp)", s.Protocol)
	}
	if r := s.FailIfLossRatioAbove; r != nil && (*r < 0 || *r > 1) {
		return fmt.Errorf("fail_if_loss_ratio_above %g is out of range 0-1 (a ratio, not a percentage)", *r)
	}
	if s.FailIfRTTMeanAbove < 0 {
		return errors.New("fail_if_rtt_mean_above cannot be negative")
	}
	if s.FailIfJitterAbove < 0 {
		return errors.New("fail_if_jitter_above cannot be negative")
	}
	return nil
}

// SendDuration is how long sending all packets takes: (packets-1)·interval.
func (s *ICMPProbe) SendDuration() time.Duration {
	if s.Packets <= 1 {
		return 0
	}
	return time.Duration(s.Packets-1) * s.Interval
}

// ICMPStopMargin is the part of a probe's time budget kept free at its end,
// so the probe has stopped and reported before its deadline: a fifth of the
// budget, at most 250ms.
func ICMPStopMargin(budget time.Duration) time.Duration {
	return min(budget/5, 250*time.Millisecond)
}

// ReplyWait is the time kept, after the last packet is sent, for its reply
// when planning how many packets fit in a budget: reply_timeout when set,
// else a tenth of the budget, at most 1s.
func (s *ICMPProbe) ReplyWait(budget time.Duration) time.Duration {
	if s.ReplyTimeout > 0 {
		return s.ReplyTimeout
	}
	return min(budget/10, time.Second)
}

// PacketsThatFit is how many of the configured packets can be sent in a
// probe with this time budget (its timeout) while leaving ReplyWait for the
// last reply and ICMPStopMargin to stop: never more than Packets, never
// fewer than 1.
func (s *ICMPProbe) PacketsThatFit(budget time.Duration) int {
	packets, interval := max(s.Packets, 1), max(s.Interval, ICMPMinInterval)
	window := budget - ICMPStopMargin(budget) - s.ReplyWait(budget)
	if window <= 0 {
		return 1
	}
	return int(min(int64(packets), 1+int64(window/interval)))
}

// CheckTimeout reports a module whose packets cannot all be sent within its
// timeout (see PacketsThatFit). The prober copes (it sends the packets that
// fit, and logs it), but at load time this is almost certainly a mistake. A
// zero timeout (the scrape's) is not checked.
func (s *ICMPProbe) CheckTimeout(timeout time.Duration) error {
	if timeout <= 0 {
		return nil
	}
	if n := s.PacketsThatFit(timeout); n < s.Packets {
		return fmt.Errorf("only %d of %d packets at interval %s fit in the timeout %s (raise the timeout, or lower packets or interval)",
			n, s.Packets, s.Interval, timeout)
	}
	return nil
}
