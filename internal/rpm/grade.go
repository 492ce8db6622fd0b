package rpm

import "time"

// Class is the draft's responsiveness class (§ Round-Trips per Minute),
// from the round trip that matters to people: above 200 ms (300 RPM) a
// conversation degrades; 60 ms (1000 RPM) makes a good call; 10 ms
// (6000 RPM) is a screen refresh. Its numbers order the classes and are
// what a label-free gauge carries; the zero value is no figure.
type Class int

const (
	ClassNone      Class = iota // no figure
	ClassPoor                   // below 300 RPM
	ClassFair                   // 300 to below 1000 RPM
	ClassGood                   // 1000 to below 6000 RPM
	ClassExcellent              // 6000 RPM and above
)

// Classify puts an RPM figure in its class. The draft draws the bounds
// without saying which side they belong to; each bound opens the better
// class (300 RPM is fair).
func Classify(rpm float64) Class {
	switch {
	case !(rpm > 0):
		return ClassNone
	case rpm < 300:
		return ClassPoor
	case rpm < 1000:
		return ClassFair
	case rpm < 6000:
		return ClassGood
	}
	return ClassExcellent
}

func (c Class) String() string {
	switch c {
	case ClassPoor:
		return "poor"
	case ClassFair:
		return "fair"
	case ClassGood:
		return "good"
	case ClassExcellent:
		return "excellent"
	}
	return "none"
}

// NetworkQualityLevel is the word Apple's networkQuality prints next to
// an RPM figure: "Low" below 200, "Medium" below 1000, "High" from 1000.
// The bounds are not published (users inferred them from its output) and
// are not the draft's; they are here so a report can say what that tool
// would. Empty without a figure.
func NetworkQualityLevel(rpm float64) string {
	switch {
	case !(rpm > 0):
		return ""
	case rpm < 200:
		return "Low"
	case rpm < 1000:
		return "Medium"
	}
	return "High"
}

// BloatGrade is the bufferbloat letter of the DSLReports and Waveform
// tests, from how much a round trip grows under load: A+ below 5 ms, A
// below 30, B below 60, C below 200, D below 400, F from 400 ms. From RPM,
// the increase is 60 s / RPM less the idle round trip.
func BloatGrade(increase time.Duration) string {
	switch {
	case increase < 5*time.Millisecond:
		return "A+"
	case increase < 30*time.Millisecond:
		return "A"
	case increase < 60*time.Millisecond:
		return "B"
	case increase < 200*time.Millisecond:
		return "C"
	case increase < 400*time.Millisecond:
		return "D"
	}
	return "F"
}

// RoundTrip is the round trip an RPM figure stands for (60 s / RPM); 0
// without a figure.
func RoundTrip(rpm float64) time.Duration {
	if !(rpm > 0) {
		return 0
	}
	return time.Duration(float64(time.Minute) / rpm)
}
