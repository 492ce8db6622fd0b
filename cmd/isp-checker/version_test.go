package main

import (
	"regexp"
	"runtime/debug"
	"testing"

	"github.com/prometheus/common/version"
)

// A binary built with plain `go build` (no -ldflags -X) names its version
// and revision from the build information Go records.
func TestVersionFromBuildInfo(t *testing.T) {
	saved := [...]string{version.Version, version.Revision, version.BuildDate}
	t.Cleanup(func() { version.Version, version.Revision, version.BuildDate = saved[0], saved[1], saved[2] })
	vcs := []debug.BuildSetting{
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "02fb35d518608c3bd7bc69d63f6618557e66076f"},
		{Key: "vcs.time", Value: "2026-12-01T13:38:00Z"},
		{Key: "vcs.modified", Value: "true"},
	}
	tests := []struct {
		name                    string
		ldflags                 [3]string
		info                    *debug.BuildInfo
		version, revision, date string
	}{
		{"go install of a release", [3]string{}, &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}},
			"1.2.3", "", ""},
		{"go build in a checkout", [3]string{}, &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261201133800-02fb35d51860+dirty"}, Settings: vcs},
			"0.0.0-20261201133800-02fb35d51860+dirty", "02fb35d518608c3bd7bc69d63f6618557e66076f-modified", "2026-12-01T13:38:00Z"},
		{"-buildvcs=false", [3]string{}, &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}},
			"devel", "", ""},
		{"no build information", [3]string{}, nil, "devel", "", ""},
		{"ldflags win", [3]string{"2.0.0", "abc", "20261201"}, &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}, Settings: vcs},
			"2.0.0", "abc", "20261201"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			version.Version, version.Revision, version.BuildDate = tc.ldflags[0], tc.ldflags[1], tc.ldflags[2]
			fillVersion(tc.info, tc.info != nil)
			if version.Version != tc.version || version.Revision != tc.revision || version.BuildDate != tc.date {
				t.Errorf("version %q, revision %q, date %q; want %q, %q, %q", version.Version, version.Revision, version.BuildDate, tc.version, tc.revision, tc.date)
			}
		})
	}
}

// The test binary is built without ldflags: --version still names one.
func TestVersionFlagNamesAVersion(t *testing.T) {
	code, out := runBinary(t, "--version")
	if code != 0 || !regexp.MustCompile(`^isp-checker, version [^ (]+ \(`).MatchString(out) {
		t.Errorf("--version: exit %d\n%s", code, out)
	}
}
