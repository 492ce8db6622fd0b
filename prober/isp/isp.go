// Package isp is the isp prober: the diagnosis of `isp-checker run`
// (package diagnose) as an exporter module. It is a package of its own
// because it runs the other probers through diagnose, which imports
// package prober.
package isp

import (
	"context"
	"slices"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/diagnose"
	"github.com/isp-checker/isp-checker/prober"
)

// Probe is the isp prober. Its checks come from the module's isp: options;
// the probe's target adds to them:
//
//   - an IP address or a host name with a dot is the primary internet
//     target (pinged first, and traced);
//   - an http:// or https:// URL is checked as the first web site, and its
//     host becomes the primary target;
//   - a single word such as "internet" is only a label: the module's
//     targets are used as they are;
//   - anything else fails the probe (config.ParseISPProbeTarget).
func Probe(ctx context.Context, req *prober.Request) prober.Result {
	o := req.Module.ISP
	opt := diagnose.Options{Policy: req.Policy, Logger: req.Logger}
	if ctx.Err() != nil {
		// Nothing to do: do not even read the routing table.
		return diagnose.Run(ctx, diagnose.Plan{Options: o}, opt)
	}
	host, site, err := config.ParseISPProbeTarget(req.Target)
	if err != nil {
		// Nothing runs: the module's own checks under a mistyped target
		// would pass for a diagnosis of it.
		res := &diagnose.ISPResult{}
		res.Prober, res.Target = "isp", req.Target
		res.Fail(req.Logger, "invalid target", err)
		return res
	}
	if host != "" {
		o.Targets = prepend(o.Targets, host)
	}
	if site != "" {
		o.HTTPURLs = prepend(o.HTTPURLs, site)
	}
	return diagnose.Run(ctx, diagnose.NewPlan(o, diagnose.Flagged{}), opt)
}

// prepend puts s first in list, removing a later copy.
func prepend(list []string, s string) []string {
	out := []string{s}
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return slices.Clip(out)
}
