package prober

import "github.com/isp-checker/isp-checker/internal/icmpecho"

// icmpIDs hands out echo identifiers from the process's one pool
// (icmpecho.IDs): the echo engine's probes and the traceroute and mtu
// probers' raw sockets all draw from it, so two of them running at once
// never share an identifier.
var icmpIDs idPool

type idPool struct{}

func (idPool) acquire() (uint16, error) { return icmpecho.IDs.Acquire() }
func (idPool) release(id uint16)        { icmpecho.IDs.Release(id) }
func (idPool) inUseCount() int          { return icmpecho.IDs.InUse() }
