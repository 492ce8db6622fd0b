package rpm

import (
	"errors"
	"fmt"
	"time"
)

// Params are the draft's test parameters (§ Test Parameters), under its
// names. Ratios are 0–1, not percent.
type Params struct {
	MAD int           // Moving Average Distance: intervals in a moving average and in a stability window
	ID  time.Duration // Interval Duration: how often the algorithm re-evaluates and adds connections
	TMP float64       // Trimmed Mean Percentage: the share of samples kept, the slowest trimmed
	SDT float64       // Standard Deviation Tolerance
	INP int           // load-generating connections at the start
	INC int           // load-generating connections added each interval
	MNP int           // most load-generating connections at once
	MPS int           // most probe pairs (one foreign, one self) launched per second
	PTC float64       // share of the measured capacity the probes may use
}

// Default returns draft 09's defaults.
func Default() Params {
	return Params{MAD: 4, ID: 5 * time.Second, TMP: 0.95, SDT: 0.05, INP: 1, INC: 1, MNP: 16, MPS: 100, PTC: 0.05}
}

// Validate explains the first parameter that cannot run a test.
func (p Params) Validate() error {
	switch {
	case p.MAD < 1:
		return fmt.Errorf("moving average distance %d: want at least 1 interval", p.MAD)
	case p.ID <= 0:
		return fmt.Errorf("interval duration %s: want more than 0", p.ID)
	case !(p.TMP > 0 && p.TMP <= 1):
		return fmt.Errorf("trimmed mean share %g: want a ratio above 0 and at most 1 (0.95 keeps the fastest 95 %%)", p.TMP)
	case !(p.SDT > 0 && p.SDT < 1):
		return fmt.Errorf("standard deviation tolerance %g: want a ratio above 0 and below 1 (0.05 is 5 %%)", p.SDT)
	case p.INP < 1:
		return fmt.Errorf("initial connections %d: want at least 1", p.INP)
	case p.INC < 0:
		return fmt.Errorf("connections added per interval %d: want 0 or more", p.INC)
	case p.MNP < p.INP:
		return fmt.Errorf("maximum connections %d: want at least the initial %d", p.MNP, p.INP)
	case p.MPS < 1:
		return fmt.Errorf("probes per second %d: want at least 1", p.MPS)
	case !(p.PTC > 0 && p.PTC <= 1):
		return fmt.Errorf("probe share of capacity %g: want a ratio above 0 and at most 1", p.PTC)
	}
	return nil
}

// The draft's estimate of what a probe puts on the wire, TCP and TLS
// overhead included (§ Measuring Responsiveness).
const (
	ForeignProbeBytes = 5000
	SelfProbeBytes    = 1000
	pairBytes         = ForeignProbeBytes + SelfProbeBytes
)

// ErrNoCapacity is ProbeInterval's answer before any goodput was measured:
// the draft sizes probing from the capacity, so there is nothing to size it by.
var ErrNoCapacity = errors.New("no goodput measured yet to size the probe rate by")

// ProbeInterval is the time between two probe pairs when the direction
// under test carries goodput bytes per second: 1/MPS, or longer so that
// the pairs' bytes stay within PTC of the goodput. At the defaults PTC
// binds below 6000 B × 100/s ÷ 5 % = 12 MB/s (96 Mbit/s); 20 Mbit/s of
// goodput (2.5e6 B/s) gives one pair every 6000/125000 s = 48 ms.
func (p Params) ProbeInterval(goodput float64) (time.Duration, error) {
	if !(goodput > 0) {
		return 0, ErrNoCapacity
	}
	byRate := time.Second / time.Duration(p.MPS)
	byShare := time.Duration(float64(pairBytes) / (p.PTC * goodput) * float64(time.Second))
	return max(byRate, byShare), nil
}

// PairsPerInterval is the most probe pairs one interval may launch (MPS·ID).
func (p Params) PairsPerInterval() int {
	return int(int64(p.MPS) * int64(p.ID) / int64(time.Second))
}
