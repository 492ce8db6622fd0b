package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzConfigRoundTrip loads arbitrary YAML; whatever loads must render (as
// /config shows it) to YAML that loads again and renders the same, and a
// config that does not load must say why. Seeded with every fixture.
//
// Run: go test ./config/ -run '^$' -fuzz FuzzConfigRoundTrip -fuzztime 60s
func FuzzConfigRoundTrip(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yml")
	for _, p := range append(files, "default.yml") {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("modules: {a: ~}\n"))
	f.Add([]byte("modules:\n  a:\n    prober: dns\n    dns:\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Load(data, "")
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		checkRoundTrip(t, c)
	})
}
