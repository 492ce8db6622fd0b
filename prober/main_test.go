package prober

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: every
// probe must close its connections and stop its helpers before it returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
