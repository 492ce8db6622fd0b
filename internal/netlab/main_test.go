package netlab_test

import (
	"os"
	"testing"

	"github.com/isp-checker/isp-checker/internal/netlab"
)

func TestMain(m *testing.M) {
	netlab.Isolate()
	os.Exit(m.Run())
}
