package integration

import (
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/isp-checker/isp-checker/probers"
)

var docMetric = regexp.MustCompile("`((?:probe|isp_checker|blackbox_exporter|blackbox_module)_[a-z0-9_]+)")

// repoFile returns a file of the repository, by its path from the top.
func repoFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root(t), path))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// documented returns the metric names written in backticks in a Markdown file.
func documented(t *testing.T, path string) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, m := range docMetric.FindAllStringSubmatch(repoFile(t, path), -1) {
		n := m[1]
		for _, h := range Histograms {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if n == h+suffix {
					n = h
				}
			}
		}
		names[n] = true
	}
	return names
}

// TestContractMatchesDocs compares the contract with the documentation:
// every metric docs/metrics.md names must be in the contract, and every
// contract name of the common metrics and of each prober registered in this
// build must be documented in docs/metrics.md (the exporter's own in
// README.md or docs/metrics.md). Probers not registered yet are not required
// to be documented.
func TestContractMatchesDocs(t *testing.T) {
	docs := documented(t, "docs/metrics.md")
	readme := documented(t, "README.md")
	all := contractNames()
	for _, n := range sortedKeys(docs) {
		if !all[n] {
			t.Errorf("docs/metrics.md documents %s, which is not in integration/metrics_contract_test.go", n)
		}
	}
	registered := probers.All().Names()
	for _, p := range slices.Sorted(maps.Keys(Emitted)) {
		switch {
		case p == "exporter":
			for _, n := range Emitted[p] {
				if !docs[n] && !readme[n] {
					t.Errorf("the exporter's metric %s is documented neither in README.md nor in docs/metrics.md", n)
				}
			}
		case p == "common" || slices.Contains(registered, p):
			var missing []string
			for _, n := range Emitted[p] {
				if !docs[n] {
					missing = append(missing, n)
				}
			}
			if len(missing) > 0 {
				t.Errorf("the %s metrics %s are not documented in docs/metrics.md", p, strings.Join(missing, ", "))
			}
		default:
			t.Logf("prober %q is not registered yet: its documentation is not required", p)
		}
	}
}
