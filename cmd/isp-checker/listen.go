package main

import (
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/prometheus/exporter-toolkit/web"

	"github.com/isp-checker/isp-checker/server"
)

// listenAndServe is exporter-toolkit's web.ListenAndServe, whose TCP
// listeners are the Parker's when it reads requests itself (no web config
// file): then the first request of a new connection is read as a next one
// is (server.Parker.Listener). Socket activation, vsock addresses, a web
// config file and a bad flag go to web.ListenAndServe as they are.
func listenAndServe(srv *http.Server, flags *web.FlagConfig, parker *server.Parker, logger *slog.Logger) error {
	if flags.WebConfigFile == nil || *flags.WebConfigFile != "" || flags.WebSystemdSocket != nil && *flags.WebSystemdSocket ||
		flags.WebListenAddresses == nil || len(*flags.WebListenAddresses) == 0 ||
		slices.ContainsFunc(*flags.WebListenAddresses, func(a string) bool { return strings.HasPrefix(a, "vsock://") }) {
		return web.ListenAndServe(srv, flags, logger)
	}
	listeners := make([]net.Listener, 0, len(*flags.WebListenAddresses))
	for _, a := range *flags.WebListenAddresses {
		l, err := net.Listen("tcp", a)
		if err != nil {
			return err
		}
		defer func() { _ = l.Close() }()
		listeners = append(listeners, parker.Listener(l))
	}
	return web.ServeMultiple(listeners, srv, flags, logger)
}
