// Command target is a tiny loopback web site for benchmarks: it answers
// every request with a small page, as a typical health endpoint does.
package main

import (
	"flag"
	"log"
	"net/http"
	"time"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:18080", "listen address (loopback only)")
	flag.Parse()
	page := []byte("<html><body>ok</body></html>\n")
	srv := &http.Server{
		Addr:              *addr,
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write(page)
		}),
	}
	log.Fatal(srv.ListenAndServe())
}
