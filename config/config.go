// Package config holds isp-checker's configuration: the blackbox_exporter
// compatible `modules:` schema, isp-checker's own prober options, and the
// target policy. It is strict (unknown fields are errors), applies defaults in
// UnmarshalYAML and validates everything at load time, so a probe never meets
// a config error. It must not import the prober package.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration file.
//
// A module is held by pointer so a probe can point at it rather than carry
// a copy (a Module holds every prober's options, 3.7 kB): a loaded Config's
// modules are shared by every probe that runs them, and nothing changes
// them after Load. Code that needs a changed module copies it first. A
// reload builds a new Config, so a running probe keeps the module it began
// with.
type Config struct {
	Modules      map[string]*Module `yaml:"modules"`
	TargetPolicy TargetPolicy       `yaml:"target_policy,omitempty"`
}

// Module is one named probe configuration, as in blackbox_exporter: the
// prober's name and that prober's options under a key of the same name.
// Each prober's options are a field here (see sections.go).
type Module struct {
	Prober     string          `yaml:"prober,omitempty"`
	Timeout    time.Duration   `yaml:"timeout,omitempty"`
	HTTP       HTTPProbe       `yaml:"http,omitempty"`
	TCP        TCPProbe        `yaml:"tcp,omitempty"`
	ICMP       ICMPProbe       `yaml:"icmp,omitempty"`
	DNS        DNSProbe        `yaml:"dns,omitempty"`
	GRPC       GRPCProbe       `yaml:"grpc,omitempty"`
	Unix       UnixProbe       `yaml:"unix,omitempty"`
	Traceroute TracerouteProbe `yaml:"traceroute,omitempty"`
	MTU        MTUProbe        `yaml:"mtu,omitempty"`
	Throughput ThroughputProbe `yaml:"throughput,omitempty"`
	// Responsiveness is config/responsiveness.go's.
	Responsiveness ResponsivenessProbe `yaml:"responsiveness,omitempty"`
	ISP            ISPProbe            `yaml:"isp,omitempty"`
	Websocket      WebsocketProbe      `yaml:"websocket,omitempty"`
}

// DefaultModule holds the defaults every module starts from.
func DefaultModule() Module {
	return Module{
		HTTP:           DefaultHTTPProbe(),
		TCP:            DefaultTCPProbe(),
		ICMP:           DefaultICMPProbe(),
		DNS:            DefaultDNSProbe(),
		GRPC:           DefaultGRPCProbe(),
		Unix:           DefaultUnixProbe(),
		Traceroute:     DefaultTracerouteProbe(),
		MTU:            DefaultMTUProbe(),
		Throughput:     DefaultThroughputProbe(),
		Responsiveness: DefaultResponsivenessProbe(),
		ISP:            DefaultISPProbe(),
		Websocket:      DefaultWebsocketProbe(),
	}
}

// NewModule returns a module of the named prober with every default, as
// loading "prober: name" gives it. Code that builds a module starts here,
// changes what it needs and, when it took values from outside the config,
// calls Check: probers trust their options and check nothing themselves.
func NewModule(prober string) Module {
	m := DefaultModule()
	m.Prober = prober
	return m
}

// Check runs the checks loading runs on a parsed module: its prober's
// section's Validate, and the checks across options and files.
func (m *Module) Check() error {
	if !knownProber(m.Prober) {
		return fmt.Errorf("unknown prober %q (known: %s)", m.Prober, strings.Join(ProberNames(), ", "))
	}
	if m.Timeout < 0 {
		return errors.New("timeout cannot be negative")
	}
	return m.load()
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (m *Module) UnmarshalYAML(unmarshal func(any) error) error {
	*m = DefaultModule()
	type module Module
	if err := unmarshal((*module)(m)); err != nil {
		return err
	}
	if m.Prober == "" {
		return errors.New("prober must be set")
	}
	if !knownProber(m.Prober) {
		return fmt.Errorf("unknown prober %q (known: %s)", m.Prober, strings.Join(ProberNames(), ", "))
	}
	if m.Timeout < 0 {
		return errors.New("timeout cannot be negative")
	}
	return nil
}

// nodeOf captures the yaml node an obsolete-style UnmarshalYAML is decoding
// (the node itself, not a copy), for the checks yaml's decoder cannot do.
type nodeOf struct{ *yaml.Node }

// UnmarshalYAML implements yaml.Unmarshaler (the node form).
func (n *nodeOf) UnmarshalYAML(node *yaml.Node) error {
	n.Node = node
	return nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (c *Config) UnmarshalYAML(unmarshal func(any) error) error {
	*c = Config{TargetPolicy: DefaultTargetPolicy()}
	var raw nodeOf
	if err := unmarshal(&raw); err != nil {
		return err
	}
	mods := moduleNodes(raw.Node) // before chunkModules rewrites them
	if err := chunkModules(raw.Node); err != nil {
		return err
	}
	type config Config
	if err := unmarshal((*config)(c)); err != nil {
		return nameModule(err, mods, raw.Node)
	}
	if c.Modules == nil {
		c.Modules = map[string]*Module{}
	}
	for name := range c.Modules {
		if name == "" {
			return errors.New("module name cannot be empty")
		}
	}
	return nil
}

// moduleNode is one module of the file: its name and where it is.
type moduleNode struct {
	name     string
	key, val *yaml.Node
}

// moduleNodes returns the modules mapping's entries, in file order.
func moduleNodes(raw *yaml.Node) []moduleNode {
	mods := topLevel(raw, "modules")
	if mods == nil || mods.Kind != yaml.MappingNode {
		return nil
	}
	var out []moduleNode
	for i := 0; i+1 < len(mods.Content); i += 2 {
		out = append(out, moduleNode{name: mods.Content[i].Value, key: mods.Content[i], val: mods.Content[i+1]})
	}
	return out
}

// topLevel returns the value of key in the top-level mapping raw, or nil.
func topLevel(raw *yaml.Node, key string) *yaml.Node {
	if raw == nil || raw.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(raw.Content); i += 2 {
		if raw.Content[i].Value == key {
			return raw.Content[i+1]
		}
	}
	return nil
}

var yamlLine = regexp.MustCompile(`^line (\d+): `)

// nameModule makes a decoding error say which module it is in, as the
// checks after decoding do ("module \"a\": icmp: …"). yaml gives a line for
// a type error or an unknown field: the module is the one whose entry
// holds that line. An error a section's UnmarshalYAML returned (a bad
// regexp, a label name, a missing query_name) has no line, and yaml stops
// at it: the module is the first whose decoding alone gives the same error,
// and its prober's section is named when decoding that section alone does.
func nameModule(err error, mods []moduleNode, raw *yaml.Node) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		out := &yaml.TypeError{Errors: make([]string, len(te.Errors))}
		for i, msg := range te.Errors {
			out.Errors[i] = msg
			m := yamlLine.FindStringSubmatch(msg)
			if m == nil {
				continue
			}
			line, _ := strconv.Atoi(m[1])
			for j, mod := range mods {
				if line >= mod.key.Line && (j+1 == len(mods) || line < mods[j+1].key.Line) {
					out.Errors[i] = fmt.Sprintf("module %q: %s", mod.name, msg)
					break
				}
			}
		}
		return out
	}
	for _, mod := range mods {
		var m Module
		if e := mod.val.Decode(&m); e == nil || e.Error() != err.Error() {
			continue
		}
		// m.Prober is set before the section is decoded only when the
		// prober: key comes first; read it from the node.
		if p := topLevel(mod.val, "prober"); p != nil {
			m.Prober = p.Value
		}
		if sec := topLevel(mod.val, m.Prober); sec != nil {
			if opts := m.Options(); opts != nil {
				fresh := reflect.New(reflect.TypeOf(opts).Elem()).Interface()
				if e := sec.Decode(fresh); e != nil && e.Error() == err.Error() {
					return fmt.Errorf("module %q: %s: %w", mod.name, m.Prober, err)
				}
			}
		}
		return fmt.Errorf("module %q: %w", mod.name, err)
	}
	if tp := topLevel(raw, "target_policy"); tp != nil {
		var p TargetPolicy
		if e := tp.Decode(&p); e != nil && e.Error() == err.Error() {
			return fmt.Errorf("target_policy: %w", err)
		}
	}
	return err
}

// moduleChunk is how many modules yaml decodes as one mapping; see chunkModules.
const moduleChunk = 64

// chunkModules keeps parsing linear in the number of modules. yaml.v3
// checks a mapping for duplicate keys by comparing every pair, so 40,000
// modules took 13 s. It rewrites the modules mapping in place (raw shares its
// child nodes with the node being decoded) as a merge of small mappings,
// after checking for duplicates itself with a map: the same decoder, strict
// fields and line numbers, and the same error for a duplicate. A mapping
// that already holds a merge key is left alone.
func chunkModules(raw *yaml.Node) error {
	if raw == nil || raw.Kind != yaml.MappingNode {
		return nil
	}
	var mods *yaml.Node
	for i := 0; i+1 < len(raw.Content); i += 2 {
		if raw.Content[i].Value == "modules" {
			mods = raw.Content[i+1]
		}
	}
	if mods == nil || mods.Kind != yaml.MappingNode || len(mods.Content) <= 2*moduleChunk {
		return nil
	}
	seen := make(map[string]int, len(mods.Content)/2)
	var dups []string
	for i := 0; i+1 < len(mods.Content); i += 2 {
		k := mods.Content[i]
		if k.Kind != yaml.ScalarNode || k.Value == "<<" {
			return nil
		}
		if line, ok := seen[k.Value]; ok {
			dups = append(dups, fmt.Sprintf("line %d: mapping key %q already defined at line %d", k.Line, k.Value, line))
			continue
		}
		seen[k.Value] = k.Line
	}
	if len(dups) > 0 {
		return &yaml.TypeError{Errors: dups}
	}
	seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: mods.Line, Column: mods.Column}
	for i := 0; i < len(mods.Content); i += 2 * moduleChunk {
		part := mods.Content[i:min(i+2*moduleChunk, len(mods.Content))]
		seq.Content = append(seq.Content, &yaml.Node{
			Kind: yaml.MappingNode, Tag: "!!map", Content: part, Line: part[0].Line, Column: part[0].Column,
		})
	}
	merge := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!merge", Value: "<<", Line: mods.Line, Column: mods.Column}
	mods.Content = []*yaml.Node{merge, seq}
	return nil
}

// ModuleNames returns the module names, sorted.
func (c *Config) ModuleNames() []string {
	names := make([]string, 0, len(c.Modules))
	for n := range c.Modules {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Load parses a configuration from YAML. Paths inside it (body_file, CA
// files, …) are resolved relative to dir.
func Load(data []byte, dir string) (*Config, error) {
	c := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("config is empty: it needs a modules: section")
		}
		return nil, errors.New(cleanYAMLError(err))
	}
	// A second document is almost always a mistake (a stray "---"), and
	// one that does not even parse must not be ignored either.
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, errors.New("config has more than one YAML document")
	case !errors.Is(err, io.EOF):
		return nil, fmt.Errorf("config has more than one YAML document, and the second one is invalid: %s", cleanYAMLError(err))
	}
	if c.Modules == nil {
		c.Modules = map[string]*Module{}
		c.TargetPolicy = DefaultTargetPolicy()
	}
	if dir != "" {
		for _, m := range c.Modules {
			if m != nil {
				m.setDirectory(dir)
			}
		}
	}
	if err := c.TargetPolicy.compile(); err != nil {
		return nil, fmt.Errorf("target_policy: %w", err)
	}
	for _, name := range c.ModuleNames() {
		m := c.Modules[name]
		if m == nil || m.Prober == "" {
			// "name: ~" or "name:": yaml never called Module.UnmarshalYAML.
			return nil, fmt.Errorf("module %q is empty: prober must be set", name)
		}
		if err := m.load(); err != nil {
			return nil, fmt.Errorf("module %q: %w", name, err)
		}
	}
	return c, nil
}

// LoadFile reads and parses a configuration file.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config file: %w", err)
	}
	c, err := Load(data, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("parsing config file %s: %w", path, err)
	}
	return c, nil
}

// setDirectory makes relative file paths in the module relative to dir.
func (m *Module) setDirectory(dir string) {
	m.HTTP.HTTPClientConfig.SetDirectory(dir)
	if m.HTTP.BodyFile != "" && !filepath.IsAbs(m.HTTP.BodyFile) {
		m.HTTP.BodyFile = filepath.Join(dir, m.HTTP.BodyFile)
	}
	m.TCP.TLSConfig.SetDirectory(dir)
	m.DNS.TLSConfig.SetDirectory(dir)
	m.GRPC.TLSConfig.SetDirectory(dir)
	m.Unix.TLSConfig.SetDirectory(dir)
	m.Throughput.HTTPClientConfig.SetDirectory(dir)
	m.Responsiveness.TLSConfig.SetDirectory(dir)
	m.Websocket.setDirectory(dir)
}

// load does the checks that need files on disk or cross-field knowledge,
// after the whole file has been parsed.
func (m *Module) load() error {
	// A prober whose section is absent gets its defaults without the
	// section's own validation; run it here, so nothing that cannot run
	// loads (a dns module with no dns: section has no query_name).
	if err := m.validateSection(); err != nil {
		return fmt.Errorf("%s: %w", m.Prober, err)
	}
	if m.Prober == "icmp" {
		if err := m.ICMP.CheckTimeout(m.Timeout); err != nil {
			return fmt.Errorf("icmp: %w", err)
		}
	}
	if m.Prober == "http" && m.HTTP.BodyFile != "" {
		if _, err := os.Stat(m.HTTP.BodyFile); err != nil {
			return fmt.Errorf("http: body_file: %w", err)
		}
	}
	return nil
}

// validateSection runs the checks of the module's own prober section, for
// the sections that have a Validate method.
func (m *Module) validateSection() error {
	if v, ok := m.Options().(interface{ Validate() error }); ok {
		return v.Validate()
	}
	return nil
}

var yamlFieldErr = regexp.MustCompile(`line (\d+): field (\S+) not found in type config\.(\w+)`)

// cleanYAMLError turns yaml.v3's "field x not found in type config.plain"
// into a message that names the field and the section it was found in.
func cleanYAMLError(err error) string {
	msg := err.Error()
	msg = yamlFieldErr.ReplaceAllStringFunc(msg, func(s string) string {
		m := yamlFieldErr.FindStringSubmatch(s)
		return fmt.Sprintf("line %s: unknown field %q in %s", m[1], m[2], sectionName(m[3]))
	})
	// prometheus/common's header type (websocket headers, http_headers).
	msg = strings.ReplaceAll(msg, "into config.Header", "into a header: want a mapping of values, secrets and files lists")
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = strings.ReplaceAll(msg, "unmarshal errors:\n  ", "")
	msg = strings.ReplaceAll(msg, "\n  ", "; ")
	return msg
}

// Regexp is a regular expression compiled at load time that marshals back to
// its source text.
type Regexp struct {
	*regexp.Regexp
	original string
}

// NewRegexp compiles s.
func NewRegexp(s string) (Regexp, error) {
	re, err := regexp.Compile(s)
	return Regexp{Regexp: re, original: s}, err
}

// MustNewRegexp is NewRegexp for tests and literals.
func MustNewRegexp(s string) Regexp {
	re, err := NewRegexp(s)
	if err != nil {
		panic(err)
	}
	return re
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (re *Regexp) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return err
	}
	r, err := NewRegexp(s)
	if err != nil {
		return fmt.Errorf("invalid regular expression %q: %w", s, err)
	}
	*re = r
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (re Regexp) MarshalYAML() (any, error) {
	if re.original == "" {
		return nil, nil
	}
	return re.original, nil
}

// String returns the source text.
func (re Regexp) String() string { return re.original }

// Marshal renders the config as YAML with secrets hidden (prometheus/common's
// Secret type marshals as "<secret>").
//
// A config blackbox_exporter loads marshals to one it loads too: options
// blackbox does not have (tagged isp:"own") are left out while they hold
// their defaults, and so is a default target_policy. Loading the output
// applies the same defaults again.
func (c *Config) Marshal() ([]byte, error) {
	out := *c
	if reflect.DeepEqual(out.TargetPolicy, DefaultTargetPolicy()) {
		out.TargetPolicy = TargetPolicy{}
	}
	return yaml.Marshal(&out)
}

// MarshalYAML shows only the options of the module's own prober, so /config
// and debug output are not buried under other probers' defaults.
func (m Module) MarshalYAML() (any, error) {
	out := map[string]any{"prober": m.Prober}
	if m.Timeout > 0 {
		out["timeout"] = m.Timeout.String()
	}
	if opts := m.Options(); opts != nil {
		var shown any
		if h, ok := opts.(secretHider); ok {
			shown = h.hideSecrets()
		} else {
			shown = reflect.ValueOf(opts).Elem().Interface()
		}
		def := NewModule(m.Prober)
		out[m.Prober] = omitOwnDefaults(shown, def.Options())
	}
	return out, nil
}

// omitOwnDefaults returns a copy of the options opts with every field
// tagged isp:"own" (isp-checker's own, unknown to blackbox_exporter) that
// equals its default in def (a pointer to the default options) set to its
// zero value, which its omitempty leaves out of the YAML.
func omitOwnDefaults(opts, def any) any {
	v := reflect.New(reflect.TypeOf(opts)).Elem()
	v.Set(reflect.ValueOf(opts))
	d := reflect.ValueOf(def).Elem()
	if v.Kind() != reflect.Struct || d.Type() != v.Type() {
		return opts
	}
	for i := range v.NumField() {
		if v.Type().Field(i).Tag.Get("isp") == "own" && reflect.DeepEqual(v.Field(i).Interface(), d.Field(i).Interface()) {
			v.Field(i).SetZero()
		}
	}
	return v.Interface()
}

// plainHeaders are the request headers whose values are shown: standard
// ones that carry no credential and that load-time checks read (Accept-
// Encoding against compression, Host). A deny-list of names missed
// X-Custom-Pass; an allow-list fails safe.
var plainHeaders = map[string]bool{
	"Accept": true, "Accept-Encoding": true, "Accept-Language": true, "Cache-Control": true,
	"Connection": true, "Content-Type": true, "Host": true, "Origin": true, "Pragma": true,
	"Referer": true, "User-Agent": true,
}

// hideSecretHeaders returns headers with every value that may be a
// credential shown as "<secret>", as prometheus/common shows its Secret
// fields. Secrets that should be typed as such belong in
// http_client_config's http_headers (secrets:).
func hideSecretHeaders(h map[string]string) map[string]string {
	if len(h) == 0 {
		return h
	}
	out := make(map[string]string, len(h))
	for k, v := range h {
		if !plainHeaders[textproto.CanonicalMIMEHeaderKey(k)] {
			v = "<secret>"
		}
		out[k] = v
	}
	return out
}
