//go:build !linux

package speedtest

// setNotSentLowat does nothing off Linux: the endpoints still work, with
// the kernel's own send buffering.
func setNotSentLowat(uintptr, int) {}
