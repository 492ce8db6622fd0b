package main

import (
	"runtime/debug"
	"testing"
)

// The exporter collects at defaultGOGC unless GOGC is set, and then keeps
// the runtime's reading of it.
func TestTuneGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOGC", "")
	if p, env := tuneGC(); p != defaultGOGC || env || gcPercent() != defaultGOGC {
		t.Errorf("GOGC unset: tuneGC = %d, %v; in force %d; want %d", p, env, gcPercent(), defaultGOGC)
	}
	debug.SetGCPercent(130) // as the runtime would have read GOGC=130 at start
	t.Setenv("GOGC", "130")
	if p, env := tuneGC(); p != 130 || !env || gcPercent() != 130 {
		t.Errorf("GOGC=130: tuneGC = %d, %v; in force %d; want 130 from GOGC", p, env, gcPercent())
	}
	debug.SetGCPercent(0) // GOGC=0: collect continuously, not off
	t.Setenv("GOGC", "0")
	if p, env := tuneGC(); p != 0 || !env {
		t.Errorf("GOGC=0: tuneGC = %d, %v; want 0 from GOGC", p, env)
	}
	debug.SetGCPercent(-1)
	t.Setenv("GOGC", "off")
	if p, env := tuneGC(); p != -1 || !env {
		t.Errorf("GOGC=off: tuneGC = %d, %v; want -1 from GOGC", p, env)
	}
}
