package integration

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/probers"
)

// TestProberTable guards the probers table (package probers): every row is
// a prober added by all the steps of CONTRIBUTING.md's checklist, and every
// prober config knows has a row. The failure names the missing step.
// TestEmittedMatchesRender and TestContractMatchesDocs check the contract
// entry against the renderer and docs/metrics.md.
func TestProberTable(t *testing.T) {
	table := probers.All()
	known := config.ProberNames()
	for _, name := range known {
		if _, ok := table.Lookup(name); !ok {
			t.Errorf("config.Module has options for prober %q, but the probers table (probers/probers.go) has no row for it", name)
		}
	}
	confDocs := docHeadings(t, "docs/configuration.md")
	metricDocs := docHeadings(t, "docs/metrics.md")
	seen := map[string]bool{}
	for _, p := range table {
		t.Run(p.Name, func(t *testing.T) {
			if seen[p.Name] {
				t.Fatalf("the probers table has two rows named %q", p.Name)
			}
			seen[p.Name] = true
			if p.Probe == nil || p.Render == nil {
				t.Errorf("the row of %q lacks its probe function or its renderer", p.Name)
			}
			checkLayout(t, p.Name)
			checkConfigSection(t, p.Name, known)
			if !confDocs[p.Name] {
				t.Errorf("docs/configuration.md has no \"## `%s`\" section", p.Name)
			}
			if !metricDocs[p.Name] {
				t.Errorf("docs/metrics.md has no \"## `%s`\" section", p.Name)
			}
			if _, ok := Emitted[p.Name]; !ok {
				t.Errorf("the metrics contract (Emitted in integration/metrics_contract_test.go) has no entry for %q", p.Name)
			}
			// Last: resultType skips the rest when it cannot tell.
			if typ := resultType(t, p.Name); typ != p.ResultType() {
				t.Errorf("the renderer of %q takes %s, but its prober returns %s", p.Name, p.ResultType(), typ)
			}
		})
	}
}

// checkLayout: the prober's files are where CONTRIBUTING.md says.
func checkLayout(t *testing.T, name string) {
	t.Helper()
	dir := root(t)
	exists := func(path string) bool {
		_, err := os.Stat(filepath.Join(dir, path))
		return err == nil
	}
	if !exists("prober/"+name+".go") && !exists("prober/"+name+"/"+name+".go") {
		t.Errorf("prober %q has no prober/%s.go (or prober/%s/%s.go for one that runs other probers)", name, name, name, name)
	}
	for _, path := range []string{"config/" + name + ".go", "collector/" + name + ".go"} {
		if !exists(path) {
			t.Errorf("prober %q has no %s", name, path)
		}
	}
}

// checkConfigSection: config has a section for the prober, with defaults,
// under the prober's name, and a module naming the prober loads.
func checkConfigSection(t *testing.T, name string, known []string) {
	t.Helper()
	if !slices.Contains(known, name) {
		t.Errorf("config.Module has no options field with yaml key %q (config/%s.go declares the type)", name, name)
		return
	}
	m := config.DefaultModule()
	m.Prober = name
	opts := reflect.ValueOf(m.Options()).Elem()
	if opts.IsZero() && !zeroDefaults[name] {
		t.Errorf("config.DefaultModule leaves the %s options zero: set them to their defaults there", name)
	}
	if zeroDefaults[name] {
		c, err := config.Load([]byte("modules:\n  m:\n    prober: "+name+"\n    "+name+": {}\n"), "")
		if err != nil {
			t.Fatal(err)
		}
		if loaded := c.Modules["m"]; !reflect.ValueOf(loaded.Options()).Elem().IsZero() {
			t.Errorf("the %s options are listed as having no defaults, but an empty section loads as %+v", name, loaded.Options())
		}
	}
	_, err := config.Load([]byte("modules:\n  m:\n    prober: "+name+"\n    "+name+":\n      no_such_option: 1\n"), "")
	if want := `unknown field "no_such_option" in ` + name; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("an unknown %s option gives %v; want an error with %q: the section's UnmarshalYAML must decode through a local type named like its own with a lower-case initialism (%sProbe)", name, err, want, name)
	}
}

// zeroDefaults are the probers whose options all default to Go's zero
// values, so DefaultModule has nothing to set: unix (blackbox's defaults
// too: plain, no dialogue).
var zeroDefaults = map[string]bool{"unix": true}

// docHeadings returns the names of a Markdown file's "## `name`" sections.
func docHeadings(t *testing.T, path string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for line := range strings.Lines(repoFile(t, path)) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "## `"); ok {
			if name, _, ok := strings.Cut(rest, "`"); ok {
				if out[name] {
					t.Errorf("%s has two \"## `%s`\" sections", path, name)
				}
				out[name] = true
			}
		}
	}
	return out
}
