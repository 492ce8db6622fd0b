package config

// ISPProbe holds the isp prober's options (filled in by its issue).
type ISPProbe struct {
}

// DefaultISPProbe returns the isp defaults.
func DefaultISPProbe() ISPProbe { return ISPProbe{} }

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *ISPProbe) UnmarshalYAML(unmarshal func(any) error) error {
	*s = DefaultISPProbe()
	type ispProbe ISPProbe
	return unmarshal((*ispProbe)(s))
}
