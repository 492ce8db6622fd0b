package rpm

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDefaultIsDraft09(t *testing.T) {
	p := Default()
	want := Params{MAD: 4, ID: 5 * time.Second, TMP: 0.95, SDT: 0.05, INP: 1, INC: 1, MNP: 16, MPS: 100, PTC: 0.05}
	if p != want {
		t.Errorf("Default() = %+v, want draft 09's table %+v", p, want)
	}
	if err := p.Validate(); err != nil {
		t.Error(err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		change func(*Params)
		want   string
	}{
		{func(p *Params) { p.MAD = 0 }, "moving average distance 0"},
		{func(p *Params) { p.ID = 0 }, "interval duration 0s"},
		{func(p *Params) { p.TMP = 95 }, "trimmed mean share 95: want a ratio"},
		{func(p *Params) { p.TMP = 0 }, "trimmed mean share 0"},
		{func(p *Params) { p.SDT = 5 }, "standard deviation tolerance 5"},
		{func(p *Params) { p.INP = 0 }, "initial connections 0"},
		{func(p *Params) { p.INC = -1 }, "connections added per interval -1"},
		{func(p *Params) { p.MNP = 0 }, "maximum connections 0: want at least the initial 1"},
		{func(p *Params) { p.MPS = 0 }, "probes per second 0"},
		{func(p *Params) { p.PTC = 1.5 }, "probe share of capacity 1.5"},
	} {
		p := Default()
		tc.change(&p)
		err := p.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want an error containing %q", p, err, tc.want)
		}
	}
}

// Probe pacing: one pair (6000 bytes) every 1/MPS, or as rarely as PTC of
// the goodput needs.
func TestProbeInterval(t *testing.T) {
	p := Default()
	for _, tc := range []struct {
		goodput float64 // B/s
		want    time.Duration
	}{
		// 20 Mbit/s: 6000 / (0.05 × 2.5e6) = 0.048 s.
		{2.5e6, 48 * time.Millisecond},
		// 48 Mbit/s: 6000 / 300000 = 20 ms, 50 pairs/s.
		{6e6, 20 * time.Millisecond},
		// 100 Mbit/s: 6000 / 625000 = 9.6 ms, below 1/MPS = 10 ms: MPS binds.
		{12.5e6, 10 * time.Millisecond},
		{125e6, 10 * time.Millisecond},
	} {
		got, err := p.ProbeInterval(tc.goodput)
		if err != nil || got != tc.want {
			t.Errorf("ProbeInterval(%g B/s) = %v, %v; want %v", tc.goodput, got, err, tc.want)
		}
	}
	if _, err := p.ProbeInterval(0); !errors.Is(err, ErrNoCapacity) {
		t.Errorf("ProbeInterval(0): %v, want ErrNoCapacity", err)
	}
	if n := p.PairsPerInterval(); n != 500 {
		t.Errorf("PairsPerInterval = %d, want MPS·ID = 100 × 5 = 500", n)
	}
}
