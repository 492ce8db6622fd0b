package main

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"testing"
)

// TestReadmeFlagTables: every flag `serve --help` lists (the global ones
// included) has a row in the README's flag tables.
func TestReadmeFlagTables(t *testing.T) {
	help, err := exec.Command(binary, "serve", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("serve --help: %v\n%s", err, help)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	row := regexp.MustCompile("(?m)^\\| (`--[^|]+)\\|")
	for _, m := range row.FindAllSubmatch(readme, -1) {
		for _, f := range regexp.MustCompile("`--([a-z0-9.-]+)`").FindAllSubmatch(m[1], -1) {
			documented[string(f[1])] = true
		}
	}
	var missing []string
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:-[a-z], )?--(?:\[no-\])?([a-z0-9.-]+)`).FindAllSubmatch(help, -1) {
		if f := string(m[1]); !documented[f] && !slices.Contains([]string{"help", "help-long", "help-man"}, f) {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 || len(documented) < 10 {
		t.Errorf("serve --help lists flags the README's tables lack: %v (the tables name %d)", missing, len(documented))
	}
}
