package batch

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

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
			if sc := strings.ToLower(m[1]); sc != "http" && sc != "https" {
				return "", fmt.Errorf("unsupported scheme %q: want http or https", sc)
			}
			return "", errors.New("URL has no host (want http://host/…)")
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
	host := strings.TrimSuffix(u.Hostname(), ".")
	if host == "" {
		return "", errors.New("URL has no host")
	}
	if ip := net.ParseIP(host); ip == nil {
		ascii, err := hostName(host)
		if err != nil {
			return "", err
		}
		host = ascii
	} else if ip.To4() == nil {
		host = "[" + ip.String() + "]"
	} else {
		host = ip.String()
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

// hostProfile is IDNA's lookup profile that also refuses empty labels and
// over-long names, so no host normalises to "" or to ".example".
var hostProfile = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.VerifyDNSLength(true))

// hostName returns the ASCII (punycode) form of a host name that is not an
// IP address, or why it is not a host name.
func hostName(host string) (string, error) {
	// net/url decodes %XX in a host; bytes that are not UTF-8 would become
	// U+FFFD and then a punycode name nobody wrote.
	if !utf8.ValidString(host) {
		return "", fmt.Errorf("invalid host name %q: its percent-escapes are not UTF-8", host)
	}
	ascii, err := hostProfile.ToASCII(host)
	if err == nil {
		// Some names map to punycode that does not map back: the result
		// must be a fixed point, or normalising it again would fail.
		_, err = hostProfile.ToASCII(ascii)
	}
	if err != nil {
		return "", fmt.Errorf("invalid host name %q: %w", host, err)
	}
	// A name whose last label is a number is what browsers read as an IPv4
	// address (127.1, 0x7f.0.0.1); DNS has no such top-level domain, so it
	// is a mistyped address, not a name to look up.
	labels := strings.Split(ascii, ".")
	if slices.Contains(labels, "") { // "a..b", or a second trailing dot
		return "", fmt.Errorf("invalid host name %q: it has an empty label", host)
	}
	if numericLabel.MatchString(labels[len(labels)-1]) {
		return "", fmt.Errorf("host %q is neither an IP address nor a host name", host)
	}
	return ascii, nil
}

var numericLabel = regexp.MustCompile(`^(?i:0x[0-9a-f]*|[0-9]+)$`)

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
