package diagnose

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/isp-checker/isp-checker/internal/netlab"
)

func TestMain(m *testing.M) {
	netlab.Isolate() // lab tests: see the netlab package documentation
	goleak.VerifyTestMain(m)
}
