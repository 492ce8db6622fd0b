// Package schematest checks JSON documents against the JSON Schema of the
// run report (docs/report.schema.json), for the tests of the report and of
// real runs in the lab. It implements the keywords that schema uses, no
// more. It is for tests only.
package schematest

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Validate checks doc against the parts of JSON Schema that
// docs/report.schema.json uses: type, enum, required, properties (false
// for a property that must be absent), items, minItems, minimum, maximum,
// allOf, if/then/else and local $ref.
func Validate(schema map[string]any, doc any) []string {
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
	if cond, ok := s["if"].(map[string]any); ok {
		probe := validator{root: v.root}
		probe.check(cond, x, path)
		branch := "then"
		if len(probe.errs) > 0 {
			branch = "else"
		}
		if sub, ok := s[branch].(map[string]any); ok {
			v.check(sub, x, path)
		}
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
			val, ok := obj[k]
			switch sub := sub.(type) {
			case bool:
				if ok && !sub {
					v.fail(path+"."+k, "must be absent")
				}
			case map[string]any:
				if ok {
					v.check(sub, val, path+"."+k)
				}
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
