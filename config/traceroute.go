package config

// TracerouteProbe holds the traceroute prober's options (filled in by its issue).
type TracerouteProbe struct {
}

// DefaultTracerouteProbe returns the traceroute defaults.
func DefaultTracerouteProbe() TracerouteProbe { return TracerouteProbe{} }

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *TracerouteProbe) UnmarshalYAML(unmarshal func(any) error) error {
	*s = DefaultTracerouteProbe()
	type tracerouteProbe TracerouteProbe
	return unmarshal((*tracerouteProbe)(s))
}
