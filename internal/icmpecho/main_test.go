package icmpecho

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: the
// engine stops its scheduler and receive loops when its last probe ends.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
