package main

import (
	"errors"
	"log"
	"net"
	"net/http"
	"strings"
	"time"
)

// The floor is what net/http alone costs a probe: a trivial server (this
// program with -floor-child) whose /probe handler waits as long as a probe
// of the module waits, then writes an answer the size of a probe's. It is
// scraped by the same client on the same kept-alive connections as the
// exporter, so its peak RSS per probe and CPU per probe are what no change
// to the exporter's own code can go below.

// floorBody is the answer's size: an icmp probe of 10 packets answers
// about this much text.
const floorBody = 2600

func serveFloor(addr string, wait time.Duration) {
	body := []byte(strings.Repeat(strings.Repeat("x", 63)+"\n", floorBody/64))
	mux := http.NewServeMux()
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/probe", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("module") != "warm" {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write(body)
	})
	l, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	// The exporter's server settings that matter here: a header timeout
	// and kept-alive connections.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
