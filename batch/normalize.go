package batch

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"

	"golang.org/x/net/idna"
)

// Normalize validates a URL for a website check and returns its canonical
// form: scheme and host lower-case, IDN host in punycode, default port and
// fragment dropped, empty path as "/". A URL with no scheme gets http://, as
// the http prober (and blackbox_exporter) assume.
func Normalize(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", errors.New("empty URL")
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return "", errors.New("URL contains white space")
	}
	if !strings.Contains(s, "://") {
		if m := schemeOnly.FindStringSubmatch(s); m != nil {
			return "", fmt.Errorf("unsupported scheme %q: want http or https", strings.ToLower(m[1]))
		}
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("malformed URL: %w", err)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("unsupported scheme %q: want http or https", u.Scheme)
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return "", errors.New("URL has no host")
	}
	if u.User != nil {
		return "", errors.New("URL has credentials in it; use the module's basic_auth instead")
	}
	host := strings.TrimRight(u.Hostname(), ".")
	if ip := net.ParseIP(strings.Trim(host, "[]")); ip == nil {
		ascii, err := idna.Lookup.ToASCII(host)
		if err == nil {
			// Some bytes map to punycode that does not map back (an
			// invalid UTF-8 byte becomes U+FFFD): the result must be a
			// fixed point, or checking it again would fail.
			_, err = idna.Lookup.ToASCII(ascii)
		}
		if err != nil {
			return "", fmt.Errorf("invalid host name %q: %w", host, err)
		}
		host = ascii
	} else if ip.To4() == nil {
		host = "[" + ip.String() + "]"
	} else {
		host = ip.String()
	}
	if host == "" { // "." or "http://./": nothing left once the root dot goes
		return "", errors.New("URL has no host")
	}
	port := u.Port()
	if port != "" {
		if (u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443") {
			port = ""
		} else if !validPort(port) {
			return "", fmt.Errorf("invalid port %q", port)
		}
	}
	u.Host = host
	if port != "" {
		u.Host = host + ":" + port
	}
	u.Fragment = ""
	u.RawFragment = ""
	if u.Path == "" {
		u.Path = "/"
	}
	return u.String(), nil
}

// schemeOnly matches "mailto:x" style URLs, but not "host:8080".
var schemeOnly = regexp.MustCompile(`^([a-zA-Z][a-zA-Z0-9+.-]*):(?:[^0-9]|$)`)

func validPort(p string) bool {
	n := 0
	for _, c := range p {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
		if n > 65535 {
			return false
		}
	}
	return n > 0
}
