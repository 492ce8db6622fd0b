package main

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
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

// TestReadmeGoVersion: the README asks for the Go go.mod requires.
func TestReadmeGoVersion(t *testing.T) {
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	if want := "Go](https://go.dev/dl/) " + string(m[1]) + " or newer"; !strings.Contains(string(readme), want) {
		t.Errorf("README does not say %q (go.mod: go %s)", want, m[1])
	}
}

// TestReadmeSpeedURL: run --help and the README give the same --speed-url
// example.
func TestReadmeSpeedURL(t *testing.T) {
	help, err := exec.Command(binary, "run", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("run --help: %v\n%s", err, help)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const example = "http://peer:9799/speedtest/download"
	if !strings.Contains(string(help), example) || !strings.Contains(string(readme), "--speed-url "+example) {
		t.Errorf("run --help and the README do not both give --speed-url %s:\n%s", example, help)
	}
	if strings.Contains(string(help), ":9115") {
		t.Errorf("run --help names blackbox's port 9115 for an isp-checker far end:\n%s", help)
	}
}
