// Package isp is the isp prober: the diagnosis of `isp-checker run`
// (package diagnose) as an exporter module. It is a package of its own
// because it runs the other probers through diagnose, which imports
// package prober.
package isp

import (
	"context"
	"net"
	"net/url"
	"slices"
	"strings"

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
//   - anything else (a single word such as "internet") is only a label:
//     the module's targets are used as they are.
func Probe(ctx context.Context, req prober.Request) prober.Result {
	o := req.Module.ISP
	opt := diagnose.Options{Policy: req.Policy, Logger: req.Logger}
	if ctx.Err() != nil {
		// Nothing to do: do not even read the routing table.
		return diagnose.Run(ctx, diagnose.Plan{Options: o}, opt)
	}
	host, site := splitProbeTarget(req.Target)
	if host != "" {
		o.Targets = prepend(o.Targets, host)
	}
	if site != "" {
		o.HTTPURLs = prepend(o.HTTPURLs, site)
	}
	return diagnose.Run(ctx, diagnose.NewPlan(o, diagnose.Flagged{}), opt)
}

// splitProbeTarget reads the probe's target parameter: the primary
// internet target it names, and the web site when it is a URL.
func splitProbeTarget(target string) (host, site string) {
	target = strings.TrimSpace(target)
	lower := strings.ToLower(target)
	if strings.HasPrefix(lower, "http://") || strings.HasPrefix(lower, "https://") {
		u, err := url.Parse(target)
		if err != nil || u.Hostname() == "" {
			return "", ""
		}
		return u.Hostname(), target
	}
	if ip := net.ParseIP(strings.Trim(target, "[]")); ip != nil {
		return ip.String(), ""
	}
	if strings.Contains(target, ".") && !strings.ContainsAny(target, "/:@ ") {
		return strings.TrimSuffix(target, "."), ""
	}
	return "", ""
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
