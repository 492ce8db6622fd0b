package diagnose

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Scores. Every dimension is scored by the same line through its
// threshold T: 1 at 0, 0.5 at T, 0 at 2T and beyond,
//
//	score(v) = clamp(1 − v/(2T), 0, 1)
//
// so a score below 0.5 means the measurement is beyond its threshold. The
// DNS score is that line over the median time to an answer (retries
// included), times the fraction of resolvers that answered without
// rewriting NXDOMAIN. The health score is the lowest measured
// dimension score (the weakest part of the connection decides how it
// feels), and 0 when the verdict is down.

// LinearScore is clamp(1 − v/(2t), 0, 1), rounded to 3 decimals.
func LinearScore(v, t float64) float64 {
	if t <= 0 || math.IsNaN(v) {
		return 0
	}
	return round3(math.Min(1, math.Max(0, 1-v/(2*t))))
}

// ScoreText is a score as text, to two decimals cut rather than rounded:
// it never reads higher than the score (0.996 is "0.99", not a perfect
// "1.00") and agrees with its Grade at the bands' edges (0.749, a C, is
// "0.74"). The tolerance keeps 0.29, stored as 0.28999…, "0.29".
func ScoreText(score float64) string {
	return fmt.Sprintf("%.2f", math.Floor(score*100+1e-6)/100)
}

// Grade is the letter of a score: A ≥ 0.9, B ≥ 0.75, C ≥ 0.5 (at most the
// threshold), D ≥ 0.25, F below.
func Grade(score float64) string {
	switch {
	case score >= 0.9:
		return "A"
	case score >= 0.75:
		return "B"
	case score >= 0.5:
		return "C"
	case score >= 0.25:
		return "D"
	}
	return "F"
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// median of vs (0 when empty); it does not modify vs.
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Pct formats a ratio as a percentage the way the evidence writes it:
// "31 %", "2.5 %", "0 %".
func Pct(r float64) string {
	p := r * 100
	if p >= 10 || p == math.Trunc(p) {
		return strconv.FormatFloat(math.Round(p), 'f', 0, 64) + " %"
	}
	return strings.TrimSuffix(strconv.FormatFloat(p, 'f', 1, 64), ".0") + " %"
}

// Dur formats seconds for people: "0.4 ms", "12 ms", "1.25 s".
func Dur(s float64) string {
	ms := s * 1000
	switch {
	case s >= 1:
		return strings.TrimSuffix(strings.TrimRight(strconv.FormatFloat(s, 'f', 2, 64), "0"), ".") + " s"
	case ms >= 10:
		return strconv.FormatFloat(math.Round(ms), 'f', 0, 64) + " ms"
	}
	return strings.TrimSuffix(strconv.FormatFloat(ms, 'f', 1, 64), ".0") + " ms"
}

// dimensions scores each dimension from the checks.
func (f *facts) dimensions() Dimensions {
	t := f.t
	d := Dimensions{
		Loss:        Dimension{Name: DimLoss, Unit: "ratio", Threshold: t.LossRatio},
		Latency:     Dimension{Name: DimLatency, Unit: "seconds", Threshold: t.LatencySeconds},
		Jitter:      Dimension{Name: DimJitter, Unit: "seconds", Threshold: t.JitterSeconds},
		DNS:         Dimension{Name: DimDNS, Unit: "seconds", Threshold: t.DNSLatencySeconds},
		Bufferbloat: Dimension{Name: DimBufferbloat, Unit: "seconds", Threshold: t.BufferbloatSeconds},
	}
	// The user's experience is what reaches the internet, LAN included: the
	// median over the targets keeps one bad destination from speaking for
	// the connection. Without targets, the gateway stands in.
	pings, where := f.measured, "median of "+plural(len(f.measured), "internet target")
	if len(pings) == 0 && f.gwKnown {
		pings, where = []pingStat{f.gw}, "the gateway"
	}
	if len(pings) > 0 {
		d.Loss.set(median(losses(pings)), where)
		if r := rtts(pings); len(r) > 0 {
			d.Latency.set(median(r), "mean round-trip time, "+where)
		} else {
			d.Latency.fail("no reply")
		}
		switch j := jitters(pings); {
		case len(j) > 0:
			d.Jitter.set(median(j), where)
		case len(rtts(pings)) > 0:
			// One reply per target says nothing about jitter: not measured,
			// rather than a perfect or a failing score.
			d.Jitter.Detail = "fewer than two replies per target: not measured"
		default:
			d.Jitter.fail("no reply")
		}
	} else {
		why := "nothing was pinged"
		if len(f.targets) > 0 {
			why = "no internet target could be pinged (" + unmeasuredWhy(f.targets[0].reason, f.targets[0].why) + ")"
		}
		for _, x := range []*Dimension{&d.Loss, &d.Latency, &d.Jitter} {
			x.Detail = why
		}
	}
	if n := len(f.r.Checks.DNS); n > 0 {
		if len(f.dnsOK) == 0 {
			d.DNS.fail("none of " + plural(n, "resolver") + " answered")
		} else {
			// A resolver that rewrites NXDOMAIN answers, but not truly.
			honest := 0
			for _, c := range f.dnsOK {
				if ok, _ := c.RewritesNXDOMAIN(); !ok {
					honest++
				}
			}
			detail := fmt.Sprintf("median time to an answer, retries included; %d of %d resolvers answered", len(f.dnsOK), n)
			if honest < len(f.dnsOK) {
				detail += fmt.Sprintf(", %d of them rewriting NXDOMAIN", len(f.dnsOK)-honest)
			}
			d.DNS.set(median(dnsTimes(f.dnsOK)), detail)
			score := round3(*d.DNS.Score * float64(honest) / float64(n))
			d.DNS.Score, d.DNS.Grade = &score, Grade(score)
		}
	} else {
		d.DNS.Detail = "no resolver checked"
		if f.r.Plan.DNSNote != "" {
			d.DNS.Detail = f.r.Plan.DNSNote
		}
	}
	if tp := f.r.Checks.Throughput; tp == nil {
		d.Bufferbloat.Detail = "no speed test (run with --speed)"
	} else {
		if bloat, ok := bufferbloat(tp); ok {
			d.Bufferbloat.set(bloat, fmt.Sprintf("latency under load %s, idle %s", Dur(tp.LatencyLoadedSeconds), Dur(tp.LatencyIdleSeconds))+rpmEvidence(f.r.Checks.Responsiveness))
		} else {
			d.Bufferbloat.Detail = "the speed test measured no idle and loaded latency"
			if tp.Error != "" {
				d.Bufferbloat.Detail = "speed test failed: " + Why(&tp.Common)
			}
		}
	}
	return d
}

func (d *Dimension) set(v float64, detail string) {
	score := LinearScore(v, d.Threshold)
	d.Measured, d.Value, d.Detail = true, &v, detail
	d.Score, d.Grade = &score, Grade(score)
}

// fail marks a dimension measured and failed: score 0, and no value (no
// reply has no round-trip time).
func (d *Dimension) fail(detail string) {
	zero := 0.0
	d.Measured, d.Value, d.Score, d.Grade, d.Detail = true, nil, &zero, Grade(0), detail
}
