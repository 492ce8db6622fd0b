package rpm

import (
	"crypto/tls"
	"errors"
	"time"
)

// Foreign is one foreign probe: a GET of the small URL on a new connection.
type Foreign struct {
	TCP  time.Duration // tcp_f: connect start to connect done
	TLS  time.Duration // tls_f: the TLS handshake divided by TLSRoundTrips; unused without TLS
	HTTP time.Duration // http_f: GET written to the whole response read
}

// TLSRoundTrips is the number of round trips a TLS handshake of version
// takes before data can flow, the divisor of tls_f: one for TLS 1.3 and
// for a resumed 1.2 session, two for a full handshake of 1.2 or earlier.
func TLSRoundTrips(version uint16, resumed bool) int {
	if version >= tls.VersionTLS13 || resumed {
		return 1
	}
	return 2
}

// Probes are the samples one RPM figure is computed from.
type Probes struct {
	Foreign []Foreign
	Self    []time.Duration // http_l: GET on a load-generating connection to the whole response
	TLS     bool            // the probes used TLS: tls_f is defined and counts
}

// Add appends more's samples.
func (p *Probes) Add(more Probes) {
	p.Foreign = append(p.Foreign, more.Foreign...)
	p.Self = append(p.Self, more.Self...)
}

// Components are the trimmed means of the four kinds of samples
// (§ Aggregating the Measurements), the inputs of the formula.
type Components struct {
	TCPForeign  time.Duration // TM(tcp_f)
	TLSForeign  time.Duration // TM(tls_f), zero without TLS
	HTTPForeign time.Duration // TM(http_f)
	HTTPSelf    time.Duration // TM(http_l)
	TLS         bool          // TLSForeign counts: the TLS formula, else the TCP-only one
	// Samples the means were taken over.
	ForeignSamples, SelfSamples int
}

// ErrNoSamples means a kind of probe has no sample, so there is no figure.
var ErrNoSamples = errors.New("no foreign or no self probe completed")

// Aggregate takes the trimmed mean (keeping the share keep) of each kind
// of sample. It needs at least one foreign and one self probe.
func Aggregate(p Probes, keep float64) (Components, error) {
	if len(p.Foreign) == 0 || len(p.Self) == 0 {
		return Components{}, ErrNoSamples
	}
	tcp := make([]float64, len(p.Foreign))
	tlsf := make([]float64, len(p.Foreign))
	httpf := make([]float64, len(p.Foreign))
	for i, f := range p.Foreign {
		tcp[i], tlsf[i], httpf[i] = float64(f.TCP), float64(f.TLS), float64(f.HTTP)
	}
	self := make([]float64, len(p.Self))
	for i, d := range p.Self {
		self[i] = float64(d)
	}
	tm := func(xs []float64) time.Duration {
		m, _ := TrimmedMean(xs, keep)
		return time.Duration(m)
	}
	c := Components{
		TCPForeign: tm(tcp), HTTPForeign: tm(httpf), HTTPSelf: tm(self),
		TLS: p.TLS, ForeignSamples: len(p.Foreign), SelfSamples: len(p.Self),
	}
	if p.TLS {
		c.TLSForeign = tm(tlsf)
	}
	return c, nil
}

// ForeignRoundTrip is the mean of the foreign components: one round trip
// of a new connection, (TM(tcp_f)+TM(tls_f)+TM(http_f))/3, or without TLS
// (TM(tcp_f)+TM(http_f))/2 (a zero tls_f would make the figure look
// faster than it is).
func (c Components) ForeignRoundTrip() time.Duration {
	if c.TLS {
		return (c.TCPForeign + c.TLSForeign + c.HTTPForeign) / 3
	}
	return (c.TCPForeign + c.HTTPForeign) / 2
}

// ForeignRPM is 60000 / the foreign round trip in ms.
func (c Components) ForeignRPM() float64 { return perMinute(c.ForeignRoundTrip()) }

// LoadedRPM is 60000 / TM(http_l) in ms.
func (c Components) LoadedRPM() float64 { return perMinute(c.HTTPSelf) }

// RPM is the draft's responsiveness (draft 04 onward): the mean of the
// foreign and the loaded RPM.
func (c Components) RPM() float64 { return (c.ForeignRPM() + c.LoadedRPM()) / 2 }

// RTTMeanRPM is the formula of drafts 02 and 03, which goresponsiveness
// prints: 60000 over the mean of the foreign round trip and TM(http_l),
// i.e. 60000 / (1/6·(TM(tcp_f)+TM(tls_f)+TM(http_f)) + 1/2·TM(http_l)).
// It is never above RPM; it is there to compare with that client.
func (c Components) RTTMeanRPM() float64 {
	return perMinute((c.ForeignRoundTrip() + c.HTTPSelf) / 2)
}

func perMinute(d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(time.Minute) / float64(d)
}
