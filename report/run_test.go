package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/isp-checker/isp-checker/diagnose"
	dt "github.com/isp-checker/isp-checker/diagnose/diagnosetest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./report -run TestRunGolden -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (go test ./report -run TestRunGolden -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestRunGolden renders synthetic diagnoses (fixed values, so the output is
// deterministic) as text, with and without colour, and as JSON.
func TestRunGolden(t *testing.T) {
	for _, name := range dt.Scenarios {
		t.Run(name, func(t *testing.T) {
			r := dt.Scenario(name)
			var text, js bytes.Buffer
			if err := WriteRun(&text, "text", r, TextOptions{}); err != nil {
				t.Fatal(err)
			}
			golden(t, "run-"+name+".txt", text.Bytes())
			if err := WriteRun(&js, "json", r, TextOptions{}); err != nil {
				t.Fatal(err)
			}
			golden(t, "run-"+name+".json", js.Bytes())
			if strings.Contains(text.String(), "\033[") {
				t.Error("plain text has escape codes")
			}
		})
	}
	var color bytes.Buffer
	if err := WriteRun(&color, "text", dt.Scenario("remote"), TextOptions{Color: true}); err != nil {
		t.Fatal(err)
	}
	golden(t, "run-remote-color.txt", color.Bytes())
	if err := WriteRun(&color, "yaml", dt.Scenario("healthy"), TextOptions{}); err == nil {
		t.Error("format yaml accepted")
	}
}

// TestRunTextVerdictLine: the text ends with the one-line verdict.
func TestRunTextVerdictLine(t *testing.T) {
	for name, want := range map[string]string{
		"healthy": "Verdict: HEALTHY — no fault found. Health score 0.95 (A).",
		"lan":     "Verdict: DEGRADED — the fault is in your local network (LAN: Wi-Fi, cables, router). Health score 0.00 (F).",
		"dns":     "Verdict: DOWN — the fault is DNS (name resolution). Health score 0.00 (F).",
	} {
		var b bytes.Buffer
		if err := WriteRun(&b, "text", dt.Scenario(name), TextOptions{}); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(b.String()), "\n")
		if got := lines[len(lines)-1]; got != want {
			t.Errorf("%s: last line %q, want %q", name, got, want)
		}
	}
}

// TestRunJSONSchema validates every scenario's report against
// docs/report.schema.json, and checks the top-level fields by hand too.
func TestRunJSONSchema(t *testing.T) {
	data, err := os.ReadFile("../docs/report.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatalf("docs/report.schema.json: %v", err)
	}
	for _, name := range dt.Scenarios {
		r := dt.Scenario(name)
		var b bytes.Buffer
		if err := WriteRun(&b, "json", r, TextOptions{}); err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		for _, e := range ValidateJSON(schema, doc) {
			t.Errorf("%s: %s", name, e)
		}
		m := doc.(map[string]any)
		if m["schema_version"] != float64(RunSchemaVersion) || m["verdict"] != r.Verdict || m["fault"] != r.Fault ||
			m["exit_code"] != float64(diagnose.ExitCode(r.Verdict)) || m["score"] != r.Score {
			t.Errorf("%s: top level %v", name, m)
		}
	}
	// The validator itself finds what is wrong.
	bad := map[string]any{"schema_version": 2.0, "verdict": "fine", "score": 1.5, "evidence": []any{}}
	errs := strings.Join(ValidateJSON(schema, bad), "\n")
	for _, want := range []string{"$.schema_version: 2 is not one of", "$.verdict: \"fine\" is not one of", "$.score: 1.5 is above the maximum 1",
		"$.evidence: 0 items, fewer than 1", "$: required property \"fault\" is missing"} {
		if !strings.Contains(errs, want) {
			t.Errorf("validator missed %q in:\n%s", want, errs)
		}
	}
}

// ValidateJSON checks doc against the parts of JSON Schema that
// docs/report.schema.json uses: type, enum, required, properties, items,
// minItems, minimum, maximum, allOf and local $ref.
func ValidateJSON(schema map[string]any, doc any) []string {
	v := validator{root: schema}
	v.check(schema, doc, "$")
	return v.errs
}

type validator struct {
	root map[string]any
	errs []string
}

func (v *validator) fail(path, format string, args ...any) {
	v.errs = append(v.errs, path+": "+fmt.Sprintf(format, args...))
}

func jsonType(x any) string {
	switch x := x.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case float64:
		if x == math.Trunc(x) {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "unknown"
}

func (v *validator) check(s map[string]any, x any, path string) {
	if ref, ok := s["$ref"].(string); ok {
		def, _ := v.root["$defs"].(map[string]any)[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
		if def == nil {
			v.fail(path, "unknown $ref %s", ref)
			return
		}
		v.check(def, x, path)
	}
	for _, sub := range asList(s["allOf"]) {
		v.check(sub.(map[string]any), x, path)
	}
	if t, ok := s["type"]; ok {
		got, types := jsonType(x), []string{}
		for _, tt := range append(asList(t), t) {
			if ts, ok := tt.(string); ok {
				types = append(types, ts)
			}
		}
		if !slices.Contains(types, got) && (got != "integer" || !slices.Contains(types, "number")) {
			v.fail(path, "%s, want %s", got, strings.Join(types, " or "))
			return
		}
	}
	if enum, ok := s["enum"].([]any); ok {
		found := false
		for _, e := range enum {
			if e == x {
				found = true
			}
		}
		if !found {
			b, _ := json.Marshal(x)
			v.fail(path, "%s is not one of %v", b, enum)
		}
	}
	if n, ok := x.(float64); ok {
		if m, ok := s["minimum"].(float64); ok && n < m {
			v.fail(path, "%v is below the minimum %v", n, m)
		}
		if m, ok := s["maximum"].(float64); ok && n > m {
			v.fail(path, "%v is above the maximum %v", n, m)
		}
	}
	if obj, ok := x.(map[string]any); ok {
		for _, r := range asList(s["required"]) {
			if _, ok := obj[r.(string)]; !ok {
				v.fail(path, "required property %q is missing", r)
			}
		}
		props, _ := s["properties"].(map[string]any)
		for k, sub := range props {
			if val, ok := obj[k]; ok {
				v.check(sub.(map[string]any), val, path+"."+k)
			}
		}
	}
	if arr, ok := x.([]any); ok {
		if m, ok := s["minItems"].(float64); ok && float64(len(arr)) < m {
			v.fail(path, "%d items, fewer than %v", len(arr), m)
		}
		if items, ok := s["items"].(map[string]any); ok {
			for i, e := range arr {
				v.check(items, e, fmt.Sprintf("%s[%d]", path, i))
			}
		}
	}
}

func asList(x any) []any {
	l, _ := x.([]any)
	return l
}
