// Package probers is the table of isp-checker's probers: the one place that
// names each prober with its probe function and its metrics view. Its
// config section is the config.Module field whose yaml key is the name
// (config/NAME.go). Adding a prober is CONTRIBUTING.md's checklist; the
// table is checked by integration's TestProberTable.
package probers

import (
	"context"
	"reflect"

	"github.com/isp-checker/isp-checker/collector"
	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/prober"
	"github.com/isp-checker/isp-checker/prober/isp"
)

// Prober is one row of the table.
type Prober struct {
	// Name is what a module's prober: names, and the key of its options.
	Name string
	// Probe runs one probe (prober/NAME.go).
	Probe prober.Func
	// Render writes the prober's own metrics (collector/NAME.go); the
	// metrics every probe shares are collector.Render's.
	Render collector.Renderer
	// Start, if set, starts a probe that can wait holding no goroutine
	// (prober.StartFunc), as Probe would run it: the /probe handler parks
	// those probes' connections meanwhile.
	Start prober.StartFunc
	// Quick, with Start, reports whether Start returns at once for the
	// module and target, waiting on nothing (no lookup, no dial): a Parker
	// may then serve the request on one of its few workers.
	Quick func(m *config.Module, target string) bool

	result reflect.Type
}

// ResultType is the Result type Render takes: the one Probe must return
// (TestProberTable checks it).
func (p Prober) ResultType() reflect.Type { return p.result }

// Table is a set of probers.
type Table []Prober

// All returns the table of every prober in this build. Each call returns a
// new Table: nothing can change the one another caller holds.
func All() Table {
	return Table{
		row("http", prober.ProbeHTTP, collector.RenderHTTP),
		row("tcp", prober.ProbeTCP, collector.RenderTCP),
		row("icmp", prober.ProbeICMP, collector.RenderICMP).startedBy(prober.StartICMP, prober.ICMPStartsAtOnce),
		row("dns", prober.ProbeDNS, collector.RenderDNS),
		row("grpc", prober.ProbeGRPC, collector.RenderGRPC),
		row("unix", prober.ProbeUnix, collector.RenderUnix),
		row("websocket", prober.ProbeWebsocket, collector.RenderWebsocket),
		row("traceroute", prober.ProbeTraceroute, collector.RenderTraceroute),
		row("mtu", prober.ProbeMTU, collector.RenderMTU),
		row("throughput", prober.ProbeThroughput, collector.RenderThroughput),
		row("responsiveness", prober.ProbeResponsiveness, collector.RenderResponsiveness),
		row("isp", isp.Probe, collector.RenderISP),
	}
}

// row is one Prober; render's Result type T must be the one probe returns.
func row[T prober.Result](name string, probe prober.Func, render func(T, *collector.Emitter)) Prober {
	return Prober{Name: name, Probe: probe, Render: collector.RendererOf(render), result: reflect.TypeFor[T]()}
}

// startedBy sets p's StartFunc, and what says when it returns at once.
func (p Prober) startedBy(start prober.StartFunc, quick func(*config.Module, string) bool) Prober {
	p.Start, p.Quick = start, quick
	return p
}

// Lookup returns the prober named name.
func (t Table) Lookup(name string) (Prober, bool) {
	for _, p := range t {
		if p.Name == name {
			return p, true
		}
	}
	return Prober{}, false
}

// Find returns the probe function and metrics view of the prober named
// name, nil and nil when the table has none.
func (t Table) Find(name string) (prober.Func, collector.Renderer) {
	p, _ := t.Lookup(name)
	return p.Probe, p.Render
}

// Names returns the probers' names in table order.
func (t Table) Names() []string {
	names := make([]string, len(t))
	for i, p := range t {
		names[i] = p.Name
	}
	return names
}

// Run runs the module's prober from the table (prober.Run); a module whose
// prober the table lacks fails its probe.
func (t Table) Run(ctx context.Context, req prober.Request) prober.Result {
	var probe prober.Func
	if req.Module != nil {
		probe, _ = t.Find(req.Module.Prober)
	}
	return prober.Run(ctx, probe, req)
}
