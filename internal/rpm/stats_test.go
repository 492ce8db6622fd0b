package rpm

import (
	"math"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

// Worked examples of the single-sided trimmed mean at TMP = 95 %: sort,
// keep floor(0.95·n) (at least one), average those.
func TestTrimmedMean(t *testing.T) {
	seq := func(from, to float64) []float64 {
		var xs []float64
		for x := from; x <= to; x++ {
			xs = append(xs, x)
		}
		return xs
	}
	for _, tc := range []struct {
		name string
		xs   []float64
		keep float64
		want float64
	}{
		// n = 20: keep 19, which drops the 200. (10+…+28)/19 = 361/19 =
		// 19; the untrimmed mean would be 561/20 = 28.05.
		{"one outlier in 20", append(seq(10, 28), 200), 0.95, 19},
		// n = 10: floor(9.5) = 9 kept, so the 100 goes: 61/9 = 6.777…;
		// rounding 9.5 up would keep it and give 161/10 = 16.1.
		{"rounding down at n=10", []float64{5, 5, 6, 6, 7, 7, 8, 8, 9, 100}, 0.95, 61.0 / 9},
		// n = 40 unsorted, 900 and 500 among them: keep 38, so both go;
		// the other 38 sum to 446: 446/38 = 11.7368….
		{"unsorted, two outliers in 40", []float64{12, 10, 11, 13, 10, 500, 12, 11, 10, 14, 13, 12, 11, 10, 12, 13, 11, 12, 10, 14, 900, 15,
			11, 12, 13, 10, 12, 11, 13, 12, 11, 10, 14, 12, 11, 13, 12, 10, 11, 12}, 0.95, 446.0 / 38},
		// n = 4: floor(3.8) = 3 kept, so even a small window loses its slowest.
		{"n=4 keeps 3", []float64{400, 100, 200, 100}, 0.95, 400.0 / 3},
		// n = 1: floor(0.95) = 0, but at least one is kept.
		{"a single sample", []float64{42}, 0.95, 42},
		{"keep everything", []float64{1, 2, 3, 10}, 1, 4},
	} {
		got, ok := TrimmedMean(tc.xs, tc.keep)
		if !ok || !near(got, tc.want, 1e-9) {
			t.Errorf("%s: TrimmedMean = %v (ok %v), want %v", tc.name, got, ok, tc.want)
		}
	}
	if _, ok := TrimmedMean(nil, 0.95); ok {
		t.Error("TrimmedMean of nothing reported a mean")
	}
	xs := []float64{3, 1, 2}
	TrimmedMean(xs, 0.95)
	if xs[0] != 3 || xs[1] != 1 {
		t.Errorf("TrimmedMean sorted its argument: %v", xs)
	}
}

// The stability rule: population standard deviation of the window below
// SDT × the current value.
func TestStable(t *testing.T) {
	// C1: responsiveness 150, 104, 101, 102, then 100.
	// Window 150, 104, 101, 102: mean 114.25; squared deviations
	// 1278.0625 + 105.0625 + 175.5625 + 150.0625 = 1708.75; ÷4 = 427.1875;
	// σ = 20.668 > 0.05 × 102 = 5.1: not stable.
	if w := []float64{150, 104, 101, 102}; !near(StdDev(w), 20.6685, 1e-4) || Stable(w, 102, 0.05) {
		t.Errorf("C1 first window: σ %v, stable %v; want 20.668, not stable", StdDev(w), Stable(w, 102, 0.05))
	}
	// Window 104, 101, 102, 100: mean 101.75; 5.0625 + 0.5625 + 0.0625 +
	// 3.0625 = 8.75; ÷4 = 2.1875; σ = 1.479 < 0.05 × 100 = 5: stable.
	if w := []float64{104, 101, 102, 100}; !near(StdDev(w), 1.4790, 1e-4) || !Stable(w, 100, 0.05) {
		t.Errorf("C1 second window: σ %v, stable %v; want 1.479, stable", StdDev(w), Stable(w, 100, 0.05))
	}

	// C2 separates the readings: 100, 100, 100, 112 has mean 103 and
	// squared deviations 9 + 9 + 9 + 81 = 108. Population σ = √27 = 5.196,
	// sample σ = √36 = 6; SDT × current = 5.6, SDT × mean = 5.15.
	c2 := []float64{100, 100, 100, 112}
	if !near(StdDev(c2), math.Sqrt(27), 1e-12) {
		t.Errorf("C2 σ = %v, want the population √27 (the sample one is 6)", StdDev(c2))
	}
	if !Stable(c2, 112, 0.05) {
		t.Error("C2: population σ 5.196 < 5.6 = SDT × current, so stable")
	}
	// goresponsiveness's reading (against the window's mean) says unstable:
	if StdDev(c2) < 0.05*Mean(c2) {
		t.Error("C2 against the window mean should be unstable (5.196 ≥ 5.15)")
	}

	if Stable(nil, 1, 0.05) || Stable([]float64{1, 1}, 0, 0.05) {
		t.Error("no window, or no current value, cannot be stable")
	}
	if Stable([]float64{5, 5, 5, 5}, 5, 0.05) != true {
		t.Error("a constant window is stable")
	}
}
