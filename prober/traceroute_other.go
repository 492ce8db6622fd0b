//go:build !linux

package prober

import (
	"errors"
	"net/netip"

	"github.com/isp-checker/isp-checker/config"
)

func openTraceSockets(config.TracerouteProbe, netip.Addr, string, uint16) (*traceSockets, error) {
	return nil, errors.New("the traceroute prober needs Linux (raw sockets with socket filters)")
}
