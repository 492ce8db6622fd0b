package rpm

import (
	"errors"
	"testing"
	"time"
)

const mb = 1_000_000

// oneSecond is the drafts-02…08 interval, which keeps the arithmetic in
// bytes per second readable.
func oneSecond() Params {
	p := Default()
	p.ID = time.Second
	return p
}

func newStage(t *testing.T, p Params) *Stage {
	t.Helper()
	s, err := NewStage(p, true)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Example B: bytes per interval 1.0, 2.0, 2.4, 2.5, 2.5, 2.4, 2.5, 2.5 MB
// with MAD 4, ID 1 s, SDT 5 %.
//
//	MA3 = 7.9/4 = 1.975   MA4 = 9.4/4 = 2.35   MA5 = 9.8/4 = 2.45
//	MA6 = 9.9/4 = 2.475   MA7 = 9.9/4 = 2.475  (MA0…MA2 do not exist)
//
// i = 6: window MA3…MA6, mean 2.3125, squared deviations 0.11390625 +
// 0.00140625 + 0.01890625 + 0.02640625 = 0.160625; ÷4 = 0.04015625;
// σ = 0.200390 ≥ 0.05 × 2.475 = 0.12375: not saturated.
// i = 7: window MA4…MA7, mean 2.4375, 0.00765625 + 0.00015625 +
// 0.00140625 + 0.00140625 = 0.010625; ÷4 = 0.00265625; σ = 0.051539 <
// 0.12375: saturated at i = 7.
func TestStageGoodputSaturation(t *testing.T) {
	bytes := []float64{1.0, 2.0, 2.4, 2.5, 2.5, 2.4, 2.5, 2.5}
	wantMA := []float64{0, 0, 0, 1.975, 2.35, 2.45, 2.475, 2.475}
	for _, id := range []time.Duration{time.Second, 5 * time.Second} {
		p := Default()
		p.ID = id
		s := newStage(t, p)
		if s.Connections() != 1 {
			t.Fatalf("ID %s: %d connections at the start, want INP = 1", id, s.Connections())
		}
		scale := id.Seconds() // the same rates over longer intervals: 5× the bytes
		for i, b := range bytes {
			st, err := s.End(Interval{Bytes: int64(b * mb * scale)})
			if err != nil {
				t.Fatal(err)
			}
			if st.Interval != i || st.Connections != i+2 {
				t.Errorf("ID %s, i=%d: status interval %d, %d connections; want %d, %d", id, i, st.Interval, st.Connections, i, i+2)
			}
			if !near(st.Goodput, wantMA[i]*mb, 1e-3) {
				t.Errorf("ID %s, i=%d: goodput %v B/s, want %v", id, i, st.Goodput, wantMA[i]*mb)
			}
			if want := i >= 7; st.Saturated != want {
				t.Errorf("ID %s, i=%d: saturated %v, want %v", id, i, st.Saturated, want)
			}
			if st.RPM != 0 || st.Done {
				t.Errorf("ID %s, i=%d: responsiveness %v (done %v) without any probe", id, i, st.RPM, st.Done)
			}
		}
		r := s.Result()
		if r.SaturatedAt != 7 || r.GoodputConfidence != ConfidenceHigh || !near(r.Goodput, 2.475*mb, 1e-3) {
			t.Errorf("ID %s: result %+v; want saturated at 7, high confidence, 2.475 MB/s", id, r)
		}
		if r.Confidence != ConfidenceNone || r.RPM != 0 {
			t.Errorf("ID %s: responsiveness %v (%v) without probes", id, r.RPM, r.Confidence)
		}
	}
}

// The responsiveness stage, on example B's goodput: each interval from
// i = 4 on has one foreign probe (tcp_f = tls_f = http_f = f) and two self
// probes of s each:
//
//	i = 4, 5: f = 200 ms, s = 800 ms;  i ≥ 6: f = 100 ms, s = 400 ms
//
// The responsiveness at i uses the probes of intervals i−3 … i; TM keeps
// floor(0.95·n): 3 of 4 foreign samples, 7 of 8 self samples.
//
//	i = 7 (saturation): foreign {200,200,100,100} → (100+100+200)/3 = 133.33 → 450 RPM;
//	                    self {800×4, 400×4} → (4·400+3·800)/7 = 571.43 → 105 RPM; RPM 277.5
//	i = 8: foreign {200,100,100,100} → 100 → 600; self {800×2, 400×6} → (6·400+800)/7
//	       = 457.14 → 131.25; RPM 365.625
//	i = 9, 10, 11: 100 → 600, 400 → 150; RPM 375
//
// At i = 10 the window 277.5, 365.625, 375, 375 has σ = 41.05 ≥ 0.05 × 375
// = 18.75; at i = 11, 365.625, 375, 375, 375 has mean 372.656, σ = 4.06
// < 18.75: stable, the result is 375.
func TestStageResponsiveness(t *testing.T) {
	s := newStage(t, oneSecond())
	bytes := []float64{1.0, 2.0, 2.4, 2.5, 2.5, 2.4, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5}
	wantRPM := map[int]float64{7: 277.5, 8: 365.625, 9: 375, 10: 375, 11: 375}
	for i, b := range bytes {
		iv := Interval{Bytes: int64(b * mb)}
		if i >= 4 {
			f, sp := 100*ms, 400*ms
			if i < 6 {
				f, sp = 200*ms, 800*ms
			}
			iv.Foreign = []Foreign{{TCP: f, TLS: f, HTTP: f}}
			iv.Self = []time.Duration{sp, sp}
		}
		st, err := s.End(iv)
		if err != nil {
			t.Fatal(err)
		}
		if !near(st.RPM, wantRPM[i], 1e-4) {
			t.Errorf("i=%d: RPM %v, want %v", i, st.RPM, wantRPM[i])
		}
		if want := i == 11; st.Done != want {
			t.Errorf("i=%d: done %v, want %v", i, st.Done, want)
		}
		if i == 10 {
			// Cut short here by a time limit: four values, not stable.
			r := s.Result()
			if r.Confidence != ConfidenceMedium || !near(r.RPM, 375, 1e-4) {
				t.Errorf("after i=10: %v RPM at %v confidence; want 375 at medium", r.RPM, r.Confidence)
			}
		}
	}
	r := s.Result()
	if r.Confidence != ConfidenceHigh || !near(r.RPM, 375, 1e-4) || r.Intervals != 12 {
		t.Errorf("result %v RPM at %v confidence after %d intervals; want 375, high, 12", r.RPM, r.Confidence, r.Intervals)
	}
	c := r.Components
	if c.TCPForeign != 100*ms || c.HTTPSelf != 400*ms || c.ForeignSamples != 4 || c.SelfSamples != 8 {
		t.Errorf("final components %+v; want 100 ms foreign, 400 ms self, over 4 and 8 samples", c)
	}
	if s.Connections() != 13 {
		t.Errorf("%d connections after 12 intervals, want 1 + 12 = 13", s.Connections())
	}
	if _, err := s.End(Interval{}); !errors.Is(err, ErrDone) {
		t.Errorf("End after the stage is over: %v, want ErrDone", err)
	}
}

// A far end whose rate changes under the test never saturates, and says so.
// Rates alternating 1 and 2 MB/s every four intervals give moving averages
// 1, 1.25, 1.5, 1.75, 2, 1.75, 1.5, …: the flattest window, 1.75, 2, 1.75,
// 1.5, has σ = 0.177 ≥ 0.05 × 1.5. (Alternating every two intervals would
// not do: four-interval means of 1, 1, 2, 2 are all 1.5, which is stable.)
func TestStageNeverStable(t *testing.T) {
	s := newStage(t, oneSecond())
	for i := range 40 {
		b := 1.0
		if i/4%2 == 1 {
			b = 2
		}
		st, err := s.End(Interval{
			Bytes:   int64(b * mb),
			Foreign: []Foreign{{TCP: 50 * ms, TLS: 50 * ms, HTTP: 50 * ms}},
			Self:    []time.Duration{200 * ms},
		})
		if err != nil {
			t.Fatal(err)
		}
		if st.Saturated {
			t.Fatalf("i=%d: saturated with a rate switching between 1 and 2 MB/s", i)
		}
	}
	r := s.Result()
	if r.SaturatedAt != -1 || r.GoodputConfidence != ConfidenceMedium {
		t.Errorf("goodput saturated at %d with %v confidence; want never, medium", r.SaturatedAt, r.GoodputConfidence)
	}
	// The probes still give a figure (60000/50 + 60000/200)/2 = 750, but
	// at low confidence: the responsiveness stage never started.
	if !near(r.RPM, 750, 1e-9) || r.Confidence != ConfidenceLow {
		t.Errorf("%v RPM at %v confidence; want 750 at low", r.RPM, r.Confidence)
	}

	s = newStage(t, oneSecond())
	for range 8 {
		if st, _ := s.End(Interval{Bytes: mb}); st.Saturated {
			return
		}
	}
	t.Error("a constant rate did not saturate within 8 intervals")
}

// Too short a test: fewer than MAD intervals have no moving average; the
// rate so far and the probes so far are reported at low confidence.
func TestStageCutShort(t *testing.T) {
	s := newStage(t, oneSecond())
	if r := s.Result(); r.GoodputConfidence != ConfidenceNone || r.Confidence != ConfidenceNone {
		t.Errorf("before any interval: %+v", r)
	}
	for _, b := range []int64{1 * mb, 3 * mb} {
		if _, err := s.End(Interval{Bytes: b, Foreign: []Foreign{{TCP: 10 * ms, TLS: 10 * ms, HTTP: 10 * ms}}, Self: []time.Duration{30 * ms}}); err != nil {
			t.Fatal(err)
		}
	}
	r := s.Result()
	// Goodput: 4 MB over two 1 s intervals. RPM: (6000 + 2000)/2 = 4000;
	// TM of 2 samples keeps floor(1.9) = 1, the faster (both equal here).
	if r.GoodputConfidence != ConfidenceLow || !near(r.Goodput, 2*mb, 1e-9) || r.Confidence != ConfidenceLow || !near(r.RPM, 4000, 1e-9) {
		t.Errorf("after 2 intervals: %+v; want 2 MB/s and 4000 RPM, both low confidence", r)
	}
	if _, err := s.End(Interval{Bytes: -1}); err == nil {
		t.Error("negative bytes accepted")
	}
}

func TestNewStageValidates(t *testing.T) {
	p := Default()
	p.MNP = 0
	if _, err := NewStage(p, true); err == nil {
		t.Error("MNP below INP accepted")
	}
}
