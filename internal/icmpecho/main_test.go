package icmpecho

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/isp-checker/isp-checker/internal/netlab"
)

// TestMain runs the tests in a network namespace of their own (their raw
// sockets then see only their own traffic, and the host's pingers none of
// theirs), and fails them if a goroutine outlives them: the engine stops
// its scheduler and receive loops when its last probe ends.
func TestMain(m *testing.M) {
	netlab.Isolate()
	goleak.VerifyTestMain(m)
}
