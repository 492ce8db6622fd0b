package server

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// ParseRoutePrefix normalises a route prefix (--web.route-prefix) as
// Prometheus and its exporters do: "" and "/" are the root, anything else
// becomes "/a/b/", one slash before and after. Only a plain path is taken:
// the exporter's router reads "{…}" as a wildcard, and "?", "#", spaces
// or ".." could never match a request's cleaned path.
func ParseRoutePrefix(s string) (string, error) {
	p := strings.Trim(s, "/")
	if p == "" {
		return "/", nil
	}
	for _, c := range p {
		if !routeChar(c) {
			return "", fmt.Errorf("route prefix %q: %q cannot be in it (want a path such as /blackbox)", s, c)
		}
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", fmt.Errorf("route prefix %q: want a path without empty, . or .. segments, such as /blackbox", s)
		}
	}
	return "/" + p + "/", nil
}

// routeChar: letters, digits and the characters RFC 3986 lets a path
// segment hold unescaped, but for "%" (an escaped prefix would have to be
// matched against the escaped path).
func routeChar(c rune) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.ContainsRune("-._~!$&'()*+,;=:@/", c)
}

// ParseExternalURL checks the URL the exporter is reachable at
// (--web.external-url): an http or https URL with a host, or a bare path;
// its path, without a trailing slash, is the default route prefix.
func ParseExternalURL(s string) (*url.URL, error) {
	if strings.HasPrefix(s, `"`) || strings.HasPrefix(s, "'") || strings.HasSuffix(s, `"`) || strings.HasSuffix(s, "'") {
		return nil, fmt.Errorf("external URL %s: remove the quotes around it", s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("external URL %q: %w", s, errors.Unwrap(err))
	}
	switch {
	case u.Scheme == "" && u.Host == "" && strings.HasPrefix(u.Path, "/"):
	case (u.Scheme == "http" || u.Scheme == "https") && u.Host != "":
	default:
		return nil, fmt.Errorf("external URL %q: want http:// or https:// and a host (e.g. https://probes.example.net/blackbox), or a path starting with /", s)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// underPrefix serves h under prefix ("/a/"), its requests seen without
// the prefix; the root redirects to the prefix (or to the external URL),
// as Prometheus does, and every other path is not found.
func underPrefix(prefix string, external *url.URL, h http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	// "/a/" takes the whole subtree, and "/a" is redirected to "/a/".
	mux.Handle(prefix, http.StripPrefix(strings.TrimSuffix(prefix, "/"), h))
	home := prefix
	if external != nil && external.Host != "" {
		u := *external
		u.Path += "/"
		home = u.String()
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		http.Redirect(w, r, home, http.StatusFound)
	})
	return mux
}
