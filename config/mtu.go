package config

// MTUProbe holds the mtu prober's options (filled in by its issue).
type MTUProbe struct {
}

// DefaultMTUProbe returns the mtu defaults.
func DefaultMTUProbe() MTUProbe { return MTUProbe{} }

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *MTUProbe) UnmarshalYAML(unmarshal func(any) error) error {
	*s = DefaultMTUProbe()
	type mtuProbe MTUProbe
	return unmarshal((*mtuProbe)(s))
}
