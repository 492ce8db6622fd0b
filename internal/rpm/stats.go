package rpm

import (
	"math"
	"slices"
)

// TrimmedMean is the draft's single-sided trimmed mean: the mean of the
// smallest floor(keep·n) samples, at least one, so the slowest (1−keep)
// are dropped and none of the fastest. ok is false without samples.
func TrimmedMean(xs []float64, keep float64) (mean float64, ok bool) {
	if len(xs) == 0 {
		return 0, false
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	// The epsilon keeps 0.95·20 from flooring to 18 in binary floating point.
	n := max(1, int(float64(len(s))*keep+1e-9))
	return Mean(s[:min(n, len(s))]), true
}

// Mean is the arithmetic mean; NaN without values.
func Mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

// StdDev is the population standard deviation (÷n): the window is the
// whole population the rule looks at, not a sample of a larger one.
func StdDev(xs []float64) float64 {
	m := Mean(xs)
	var ss float64
	for _, x := range xs {
		ss += (x - m) * (x - m)
	}
	return math.Sqrt(ss / float64(len(xs)))
}

// Stable is the draft's stability rule: the standard deviation of the
// window (the last MAD values) is below sdt times the current value.
func Stable(window []float64, current, sdt float64) bool {
	if len(window) == 0 || !(current > 0) {
		return false
	}
	return StdDev(window) < sdt*current
}
