package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Module shapes that cannot run must fail at load time with one clear
// message each, not at probe time.
func TestLoadRefusesShapesThatCannotRun(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"null module", "modules: {a: ~}\n", `module "a" is empty: prober must be set`},
		{"empty module", "modules:\n  a:\n", `module "a" is empty: prober must be set`},
		{"dns without dns section", "modules:\n  a:\n    prober: dns\n", `module "a": dns: query_name must be set for a dns module`},
		{"dns with null section", "modules:\n  a:\n    prober: dns\n    dns: ~\n", `module "a": dns: query_name must be set for a dns module`},
		{"dns without query_name", "modules:\n  a:\n    prober: dns\n    dns: {query_type: A}\n", `query_name must be set for a dns module`},
		{"broken second document", "modules:\n  a: {prober: tcp}\n---\nmodules: [\n", `config has more than one YAML document, and the second one is invalid: line 4: did not find expected node content`},
		{"second document", "modules:\n  a: {prober: tcp}\n---\nmodules: {}\n", `config has more than one YAML document`},
		{"duplicate module", "modules:\n  a: {prober: tcp}\n  a: {prober: icmp}\n", `line 3: mapping key "a" already defined at line 2`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load([]byte(tc.yaml), "")
			if err == nil {
				t.Fatalf("loaded:\n%s", tc.yaml)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %q\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

// A section written with no options is the same as an absent one: its
// defaults, not Go's zero values (yaml leaves a struct alone for a null
// node; this keeps it so).
func TestNullSectionGetsDefaults(t *testing.T) {
	for _, p := range ProberNames() {
		absent, aerr := Load([]byte("modules:\n  a:\n    prober: "+p+"\n"), "")
		null, err := Load([]byte("modules:\n  a:\n    prober: "+p+"\n    "+p+":\n"), "")
		if aerr != nil {
			// A prober with a required option (dns: query_name) refuses both
			// the same way.
			if err == nil || err.Error() != aerr.Error() {
				t.Errorf("%s: without a section: %v; with a null section: %v", p, aerr, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s with a null section: %v", p, err)
		}
		if !reflect.DeepEqual(absent.Modules["a"], null.Modules["a"]) {
			t.Errorf("%s: a null section differs from an absent one:\nabsent %+v\nnull   %+v", p, absent.Modules["a"], null.Modules["a"])
		}
	}
}

// manyModules is a config of n tcp modules, one of them (at index bad, if
// in range) with an unknown field, and a duplicate of module dup (if in
// range) at the end.
func manyModules(n, bad, dup int) string {
	var b strings.Builder
	b.WriteString("modules:\n")
	for i := range n {
		fmt.Fprintf(&b, "  m%d:\n    prober: tcp\n", i)
		if i == bad {
			b.WriteString("    tcp: {no_such_option: ip4}\n")
		}
	}
	if dup >= 0 && dup < n {
		fmt.Fprintf(&b, "  m%d:\n    prober: icmp\n", dup)
	}
	b.WriteString("target_policy:\n  deny_hosts: ['*.internal']\n")
	return b.String()
}

// A config too large for yaml's own (quadratic) duplicate check is parsed
// in chunks: it must stay as strict as a small one, with the same line
// numbers. BenchmarkLoadModules shows the time.
func TestLoadManyModulesStaysStrict(t *testing.T) {
	const n = 1000
	c, err := Load([]byte(manyModules(n, -1, -1)), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Modules) != n || c.Modules["m999"].Prober != "tcp" || !c.Modules["m0"].TCP.IPProtocolFallback {
		t.Fatalf("modules not loaded with their defaults: %d, %+v", len(c.Modules), c.Modules["m999"])
	}
	if len(c.TargetPolicy.DenyHosts) != 1 {
		t.Fatal("the keys after modules were lost")
	}
	// Module m700 starts on line 2+2·700 and its tcp: line follows.
	_, err = Load([]byte(manyModules(n, 700, -1)), "")
	if want := `line 1404: unknown field "no_such_option" in tcp`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("unknown field: got %v, want %q", err, want)
	}
	_, err = Load([]byte(manyModules(n, -1, 5)), "")
	if want := `line 2002: mapping key "m5" already defined at line 12`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("duplicate: got %v, want %q", err, want)
	}
}

// BenchmarkLoadModules shows parsing linear in the number of modules (it
// was quadratic: 40,000 modules took 12.7 s in the issue, 6.6 s here).
func BenchmarkLoadModules(b *testing.B) {
	for _, n := range []int{1000, 10000, 40000} {
		data := []byte(manyModules(n, -1, -1))
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				if _, err := Load(data, ""); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/module")
		})
	}
}

// What /config shows must load again, to the same configuration.
func TestMarshalRoundTrip(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yml")
	if err != nil {
		t.Fatal(err)
	}
	tried := 0
	for _, f := range files {
		c, err := LoadFile(f)
		if err != nil {
			continue // the bad-* fixtures
		}
		tried++
		t.Run(filepath.Base(f), func(t *testing.T) { checkRoundTrip(t, c) })
	}
	data, err := os.ReadFile("default.yml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(data, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("default.yml", func(t *testing.T) { checkRoundTrip(t, c) })
	if tried < 10 {
		t.Fatalf("only %d good fixtures", tried)
	}
}

func checkRoundTrip(t testing.TB, c *Config) {
	t.Helper()
	out, err := c.Marshal()
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	again, err := Load(out, "")
	if err != nil {
		t.Fatalf("/config output does not load: %v\n%s", err, out)
	}
	out2, err := again.Marshal()
	if err != nil {
		t.Fatalf("marshal again: %v", err)
	}
	if string(out) != string(out2) {
		t.Fatalf("round trip changed the config:\nfirst:\n%s\nsecond:\n%s", out, out2)
	}
}
