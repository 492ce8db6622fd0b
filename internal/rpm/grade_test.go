package rpm

import (
	"math"
	"testing"
	"time"
)

// The draft's bounds, 300, 1000 and 6000 RPM, each open the better class.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		rpm  float64
		want Class
	}{
		{0, ClassNone}, {math.NaN(), ClassNone}, {-5, ClassNone},
		{1, ClassPoor}, {299.9, ClassPoor},
		{300, ClassFair}, {999.9, ClassFair},
		{1000, ClassGood}, {5999, ClassGood},
		{6000, ClassExcellent}, {1e6, ClassExcellent},
	} {
		if got := Classify(tc.rpm); got != tc.want {
			t.Errorf("Classify(%v) = %v, want %v", tc.rpm, got, tc.want)
		}
	}
	if ClassPoor.String() != "poor" || ClassExcellent.String() != "excellent" || ClassNone.String() != "none" {
		t.Error("class names")
	}
	if ClassPoor >= ClassFair || ClassFair >= ClassGood || ClassGood >= ClassExcellent {
		t.Error("classes must order from poor to excellent, for a gauge")
	}
}

func TestNetworkQualityLevel(t *testing.T) {
	for rpm, want := range map[float64]string{0: "", 199: "Low", 200: "Medium", 999: "Medium", 1000: "High", 7000: "High"} {
		if got := NetworkQualityLevel(rpm); got != want {
			t.Errorf("NetworkQualityLevel(%v) = %q, want %q", rpm, got, want)
		}
	}
}

func TestBloatGrade(t *testing.T) {
	for _, tc := range []struct {
		inc  time.Duration
		want string
	}{
		{0, "A+"}, {4900 * time.Microsecond, "A+"}, {5 * time.Millisecond, "A"},
		{29 * time.Millisecond, "A"}, {30 * time.Millisecond, "B"}, {60 * time.Millisecond, "C"},
		{199 * time.Millisecond, "C"}, {200 * time.Millisecond, "D"}, {400 * time.Millisecond, "F"},
	} {
		if got := BloatGrade(tc.inc); got != tc.want {
			t.Errorf("BloatGrade(%v) = %s, want %s", tc.inc, got, tc.want)
		}
	}
	// 100 RPM is a 600 ms round trip; with a 1 ms idle one that is F.
	if rt := RoundTrip(100); rt != 600*time.Millisecond || BloatGrade(rt-time.Millisecond) != "F" {
		t.Errorf("RoundTrip(100) = %v", rt)
	}
	if RoundTrip(0) != 0 {
		t.Error("RoundTrip without a figure")
	}
}
