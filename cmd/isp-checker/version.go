package main

import (
	"runtime/debug"
	"strings"

	"github.com/prometheus/common/version"
)

func init() { fillVersion(debug.ReadBuildInfo()) }

// fillVersion sets what the Makefile's -ldflags -X would have set, for a
// binary built without them (go build, go install): the version from the
// module version Go recorded (v1.2.3, or a pseudo-version in a checkout;
// "devel" when there is none), the revision and build date from the VCS
// stamp. Values set by -ldflags are kept.
func fillVersion(info *debug.BuildInfo, ok bool) {
	if version.Version == "" {
		version.Version = "devel"
		if ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
			version.Version = strings.TrimPrefix(info.Main.Version, "v")
		}
	}
	if !ok {
		return
	}
	var rev, date string
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			date = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if version.Revision == "" && rev != "" {
		version.Revision = rev
		if modified {
			version.Revision += "-modified"
		}
	}
	if version.BuildDate == "" {
		version.BuildDate = date
	}
}
