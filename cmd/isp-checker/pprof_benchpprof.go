//go:build benchpprof

package main

import (
	"log"
	"net/http"
	_ "net/http/pprof" // the profiles, on http.DefaultServeMux (never the exporter's mux)
	"os"
	"runtime"
	"strconv"
)

// A build with -tags benchpprof serves net/http/pprof on
// $ISP_CHECKER_PPROF_ADDR, a listener of its own, for bench/icmp -pprof:
// the profiles of the exporter under load. Release builds have no such
// listener. $ISP_CHECKER_MEMPROFILERATE, when set, is the heap profile's
// sampling rate (runtime.MemProfileRate: 1 records every allocation).
func init() {
	if n, err := strconv.Atoi(os.Getenv("ISP_CHECKER_MEMPROFILERATE")); err == nil && n > 0 {
		runtime.MemProfileRate = n
	}
	addr := os.Getenv("ISP_CHECKER_PPROF_ADDR")
	if addr == "" {
		return
	}
	go func() { log.Print(http.ListenAndServe(addr, nil)) }() //nolint:gosec // a profiling build on loopback only
}
