package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/isp-checker/isp-checker/config"
)

// TestReadmePolicyDefaults: the README's first target_policy block is what
// a config without one gets, so nobody copies an example for a default.
func TestReadmePolicyDefaults(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)These are the defaults:\n\n```yaml\n(target_policy:\n.*?)```").FindSubmatch(data)
	if m == nil {
		t.Fatal(`README.md has no "These are the defaults:" target_policy block`)
	}
	c, err := config.Load(append(m[1], "modules: {}\n"...), "")
	if err != nil {
		t.Fatalf("the README's defaults do not load: %v\n%s", err, m[1])
	}
	// (Printed, so that an empty list and none compare equal.)
	if got, want := fmt.Sprintf("%+v", c.TargetPolicy), fmt.Sprintf("%+v", config.DefaultTargetPolicy()); got != want {
		t.Errorf("the README's defaults are\n%s\nbut a config without target_policy gets\n%s", got, want)
	}
}
