package integration

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/isp-checker/isp-checker/internal/netlab"
)

func TestMain(m *testing.M) {
	netlab.Isolate() // lab tests: see the netlab package documentation
	goleak.VerifyTestMain(m)
}

// root is the repository's top directory (tests run in integration/).
func root(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("repository root not found: %v", err)
	}
	return dir
}

// inCI is true when the tests run in CI, where a missing tool is a failure,
// not a reason to skip.
func inCI() bool { return os.Getenv("CI") == "true" }

// tool finds an external program on PATH or in one of the extra directories.
// When it is missing the test is skipped, or fails with CI=true.
func tool(t *testing.T, name string, extraDirs ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range extraDirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	msg := name + " is not installed (scripts/deps.sh installs it)"
	if inCI() {
		t.Fatal(msg + "; CI=true, so this is a failure")
	}
	t.Skip(msg)
	return ""
}

// goBin is $(go env GOPATH)/bin, where `go install` puts helm.
func goBin(t *testing.T) []string {
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return nil
	}
	var dirs []string
	for _, p := range filepath.SplitList(strings.TrimSpace(string(out))) {
		dirs = append(dirs, filepath.Join(p, "bin"))
	}
	return dirs
}

// run runs a command in dir and returns its combined output; it fails the
// test when the command fails.
func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	out, err := runErr(dir, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return out
}

func runErr(dir string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	err := cmd.Run()
	return buf.String(), err
}

// glob returns the files matching pattern under the repository root, and
// fails when there are none.
func glob(t *testing.T, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root(t), pattern))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no files match %s", pattern)
	}
	return files
}
