package rpm

import (
	"crypto/tls"
	"errors"
	"testing"
	"time"
)

const ms = time.Millisecond

func repeat(n int, d time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

// D1, a deep-queue-like case with TLS: 20 samples of each kind in the last
// MAD intervals.
//
//	tcp_f:  19 × 400 ms and one 1400 (a SYN retransmitted after the 1 s RTO): TM = 400
//	tls_f:  20 × 405 ms (TLS 1.3: one round trip):                             TM = 405
//	http_f: 19 × 395 ms and one 3000:                                           TM = 395
//	http_l: 10 × 1000, 9 × 1200, one 5000: keep 19, (10000+10800)/19 =          TM = 1094.7368
//
//	Foreign = 60000 / ((400+405+395)/3) = 60000/400 = 150
//	Loaded  = 60000 / 1094.7368 = 54.8077
//	RPM     = (150 + 54.8077) / 2 = 102.404
//	drafts 02/03: 60000 / (1200/6 + 1094.7368/2) = 60000/747.368 = 80.282
func TestComponentsDeepQueue(t *testing.T) {
	var p Probes
	p.TLS = true
	for i := range 20 {
		f := Foreign{TCP: 400 * ms, TLS: 405 * ms, HTTP: 395 * ms}
		if i == 7 {
			f.TCP = 1400 * ms
		}
		if i == 13 {
			f.HTTP = 3000 * ms
		}
		p.Foreign = append(p.Foreign, f)
	}
	p.Self = append(append(append(p.Self, repeat(10, 1000*ms)...), repeat(9, 1200*ms)...), 5000*ms)
	c, err := Aggregate(p, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	if c.TCPForeign != 400*ms || c.TLSForeign != 405*ms || c.HTTPForeign != 395*ms {
		t.Errorf("foreign TMs %v %v %v, want 400ms 405ms 395ms", c.TCPForeign, c.TLSForeign, c.HTTPForeign)
	}
	if want := 20800.0 / 19; !near(float64(c.HTTPSelf)/float64(ms), want, 1e-5) {
		t.Errorf("TM(http_l) = %v, want %.4f ms", c.HTTPSelf, want)
	}
	if c.ForeignSamples != 20 || c.SelfSamples != 20 || !c.TLS {
		t.Errorf("samples %d/%d, TLS %v", c.ForeignSamples, c.SelfSamples, c.TLS)
	}
	if c.ForeignRoundTrip() != 400*ms || !near(c.ForeignRPM(), 150, 1e-9) {
		t.Errorf("foreign round trip %v, %v RPM; want 400ms, 150", c.ForeignRoundTrip(), c.ForeignRPM())
	}
	if !near(c.LoadedRPM(), 54.8077, 1e-4) || !near(c.RPM(), 102.4038, 1e-4) {
		t.Errorf("loaded %v RPM, RPM %v; want 54.8077 and 102.4038", c.LoadedRPM(), c.RPM())
	}
	if !near(c.RTTMeanRPM(), 80.2817, 1e-4) {
		t.Errorf("draft-03 RPM %v, want 80.2817", c.RTTMeanRPM())
	}

	// The TCP-only formula on the same samples ignores tls_f:
	// Foreign = 60000 / ((400+395)/2) = 150.943; RPM = (150.943+54.808)/2 = 102.875.
	p.TLS = false
	c, _ = Aggregate(p, 0.95)
	if c.TLSForeign != 0 || !near(c.ForeignRPM(), 150.9434, 1e-4) || !near(c.RPM(), 102.8756, 1e-4) {
		t.Errorf("TCP-only: tls %v, foreign %v, RPM %v; want 0, 150.9434, 102.8756", c.TLSForeign, c.ForeignRPM(), c.RPM())
	}
}

// D2, a fast unloaded-like path: tcp_f 0.5, tls_f 2.0, http_f 1.5, http_l 8 ms.
// Foreign = 60000/(4/3) = 45000, Loaded = 7500, RPM = 26250; the
// drafts-02/03 formula gives 60000/((1.333+8)/2) = 12857: the draft-04
// formula rewards fast handshakes.
func TestComponentsFastPath(t *testing.T) {
	c, err := Aggregate(Probes{
		Foreign: []Foreign{{TCP: 500 * time.Microsecond, TLS: 2 * ms, HTTP: 1500 * time.Microsecond}},
		Self:    []time.Duration{8 * ms},
		TLS:     true,
	}, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	if !near(c.ForeignRPM(), 45000, 0.1) || !near(c.LoadedRPM(), 7500, 1e-9) || !near(c.RPM(), 26250, 0.1) {
		t.Errorf("foreign %v, loaded %v, RPM %v; want 45000, 7500, 26250", c.ForeignRPM(), c.LoadedRPM(), c.RPM())
	}
	if !near(c.RTTMeanRPM(), 12857.14, 0.01) {
		t.Errorf("draft-03 RPM %v, want 12857.14", c.RTTMeanRPM())
	}
}

func TestAggregateNeedsBothKinds(t *testing.T) {
	for _, p := range []Probes{
		{Self: []time.Duration{ms}},
		{Foreign: []Foreign{{TCP: ms, HTTP: ms}}},
		{},
	} {
		if _, err := Aggregate(p, 0.95); !errors.Is(err, ErrNoSamples) {
			t.Errorf("Aggregate(%+v) = %v, want ErrNoSamples", p, err)
		}
	}
	var zero Components
	if zero.RPM() != 0 || zero.RTTMeanRPM() != 0 {
		t.Error("no components must give no figure, not infinity")
	}
}

func TestTLSRoundTrips(t *testing.T) {
	for _, tc := range []struct {
		v       uint16
		resumed bool
		want    int
	}{
		{tls.VersionTLS13, false, 1},
		{tls.VersionTLS13, true, 1},
		{tls.VersionTLS12, false, 2},
		{tls.VersionTLS12, true, 1},
		{tls.VersionTLS10, false, 2},
	} {
		if got := TLSRoundTrips(tc.v, tc.resumed); got != tc.want {
			t.Errorf("TLSRoundTrips(%#x, resumed %v) = %d, want %d", tc.v, tc.resumed, got, tc.want)
		}
	}
}
