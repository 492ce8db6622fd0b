//go:build benchpprof

package main

import (
	"log"
	"net/http"
	_ "net/http/pprof" // the profiles, on http.DefaultServeMux (never the exporter's mux)
	"os"
)

// A build with -tags benchpprof serves net/http/pprof on
// $ISP_CHECKER_PPROF_ADDR, a listener of its own, for bench/icmp -pprof:
// the profiles of the exporter under load. Release builds have no such
// listener.
func init() {
	addr := os.Getenv("ISP_CHECKER_PPROF_ADDR")
	if addr == "" {
		return
	}
	go func() { log.Print(http.ListenAndServe(addr, nil)) }() //nolint:gosec // a profiling build on loopback only
}
