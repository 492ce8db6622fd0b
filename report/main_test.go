package report

import (
	"os"
	"testing"

	"github.com/isp-checker/isp-checker/diagnose"
)

// TestMain points the diagnosis at a fixed ping_group_range, which the fix
// text of the unknown scenario quotes, so the golden files do not depend on
// the machine's setting.
func TestMain(m *testing.M) {
	diagnose.PingGroupRangeFile = "testdata/ping_group_range"
	os.Exit(m.Run())
}
