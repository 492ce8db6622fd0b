package config

import (
	"reflect"
	"strings"
	"unicode"
)

// A prober's options are one field of Module, of a struct type declared in
// config/NAME.go, whose yaml key is the prober's name. That field is the one
// place config declares a prober: the names a module may use, /config's
// view of a module and the section names in error messages all come from
// it, and the probers table (package probers) must have a row for each.

// section is one prober's options field in Module.
type section struct {
	name  string // the prober's name and the field's yaml key
	index int    // the field's index in Module
}

var sections = moduleSections()

func moduleSections() []section {
	var out []section
	t := reflect.TypeFor[Module]()
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type.Kind() != reflect.Struct {
			continue // prober, timeout
		}
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		out = append(out, section{name: key, index: i})
	}
	return out
}

// ProberNames returns the probers a module may name, in Module's order.
func ProberNames() []string {
	names := make([]string, len(sections))
	for i, s := range sections {
		names[i] = s.name
	}
	return names
}

func knownProber(name string) bool {
	_, ok := sectionIndex(name)
	return ok
}

func sectionIndex(name string) (int, bool) {
	for _, s := range sections {
		if s.name == name {
			return s.index, true
		}
	}
	return 0, false
}

// Options returns a pointer to the module's options for its own prober
// (*HTTPProbe for an http module, …), nil when that prober has none.
func (m *Module) Options() any {
	i, ok := sectionIndex(m.Prober)
	if !ok {
		return nil
	}
	return reflect.ValueOf(m).Elem().Field(i).Addr().Interface()
}

// sectionName is the YAML key users write for the decoder's type name in a
// "field x not found in type config.T" error: each section's UnmarshalYAML
// decodes through a local type named like its own with a lower-case
// initialism (httpProbe for HTTPProbe), and the nested types are listed in
// nestedNames.
func sectionName(typ string) string {
	if n, ok := nestedNames[typ]; ok {
		return n
	}
	t := reflect.TypeFor[Module]()
	for _, s := range sections {
		if lowerInitialism(t.Field(s.index).Type.Name()) == typ {
			return s.name
		}
	}
	return typ
}

// nestedNames names the types below the top level and the prober sections.
var nestedNames = map[string]string{
	"config": "top level", "module": "module", "queryResponse": "query_response",
	"headerMatch": "header matcher", "dnsRRValidator": "dns validator", "targetPolicy": "target_policy",
	"ispThresholds": "isp thresholds", "label": "label",
}

// lowerInitialism lower-cases a Go name's leading capitals, but for the one
// that starts the next word: HTTPProbe → httpProbe, TracerouteProbe →
// tracerouteProbe.
func lowerInitialism(name string) string {
	r := []rune(name)
	n := 0
	for n < len(r) && unicode.IsUpper(r[n]) {
		n++
	}
	if n > 1 && n < len(r) {
		n--
	}
	for i := range n {
		r[i] = unicode.ToLower(r[i])
	}
	return string(r)
}

// secretHider is a prober's options that hold values /config must not show.
type secretHider interface {
	hideSecrets() any
}
