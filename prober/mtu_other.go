//go:build !linux

package prober

import (
	"errors"
	"net/netip"
)

func openMTUSockets(string, netip.Addr, string, uint16) (*mtuSockets, error) {
	return nil, errors.New("the mtu prober needs Linux (IP_PMTUDISC_PROBE)")
}
