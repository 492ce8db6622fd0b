package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"
)

// query is one PromQL expression and where it was found.
type query struct {
	file, where, expr string
	alert             string // the alert's name, for rules
}

// TestQueriesNameEmittedMetrics parses every PromQL expression in the alert
// rules (alerts/ and the Helm chart's copy) and the Grafana dashboards with
// Prometheus's own parser, and fails when one does not parse or selects a
// metric the exporter does not emit (Emitted, the histograms' series,
// client_golang's go_* and process_* as the exporter's registry has them,
// and Prometheus's own series).
func TestQueriesNameEmittedMetrics(t *testing.T) {
	allowed := allowedNames(t)
	var queries []query
	for _, f := range append(glob(t, "alerts/*.yml"), glob(t, "charts/isp-checker/files/*.rules.yml")...) {
		queries = append(queries, ruleQueries(t, f)...)
	}
	for _, f := range glob(t, "dashboards/*.json") {
		queries = append(queries, dashboardQueries(t, f, nil)...)
	}
	if len(queries) < 50 {
		t.Fatalf("found only %d queries; is the extraction broken?", len(queries))
	}
	p := parser.NewParser(parser.Options{})
	used := map[string]bool{}
	for _, q := range queries {
		expr, err := p.ParseExpr(q.expr)
		if err != nil {
			t.Errorf("%s: %s: %q does not parse: %v", q.file, q.where, q.expr, err)
			continue
		}
		for _, name := range selectedNames(t, q, expr) {
			used[name] = true
			if !allowed[name] {
				t.Errorf("%s: %s: %q selects %s, which isp-checker does not emit (see integration/metrics_contract_test.go)", q.file, q.where, q.expr, name)
			}
		}
	}
	t.Logf("%d queries select %d distinct metrics", len(queries), len(used))
}

// allowedNames is every name a query may select.
func allowedNames(t *testing.T) map[string]bool {
	allowed := contractNames()
	for _, h := range Histograms {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			allowed[h+suffix] = true
		}
	}
	for _, n := range append(Synthetic, Pushgateway...) {
		allowed[n] = true
	}
	for n := range exporterNames(t) {
		if strings.HasPrefix(n, "go_") || strings.HasPrefix(n, "process_") {
			allowed[n] = true
		}
	}
	return allowed
}

// selectedNames returns the metric names an expression selects. A selector
// without a fixed name (a regexp on __name__, or none) is an error: the check
// could not vouch for it.
func selectedNames(t *testing.T, q query, expr parser.Expr) []string {
	var names []string
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		if name == "" {
			for _, m := range vs.LabelMatchers {
				if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
					name = m.Value
				}
			}
		}
		if name == "" {
			t.Errorf("%s: %s: selector %s in %q has no fixed metric name", q.file, q.where, vs, q.expr)
			return nil
		}
		names = append(names, name)
		return nil
	})
	return names
}

// ruleQueries returns the expressions of a Prometheus rule file.
func ruleQueries(t *testing.T, file string) []query {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var rf struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert  string `yaml:"alert"`
				Record string `yaml:"record"`
				Expr   string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &rf); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var qs []query
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			qs = append(qs, query{file: rel(t, file), where: fmt.Sprintf("group %s, rule %s%s", g.Name, r.Alert, r.Record), expr: r.Expr, alert: r.Alert})
		}
	}
	return qs
}

var (
	// Grafana's interval variables, which stand where PromQL wants a duration.
	grafanaDuration = regexp.MustCompile(`\$\{?__(rate_interval|interval|range)(_ms|_s)?\}?`)
	// Any other template variable: $name, ${name}, ${name:format}, [[name]].
	grafanaVariable = regexp.MustCompile(`\$\{[^}]+\}|\$[A-Za-z_][A-Za-z0-9_]*|\[\[[^\]]+\]\]`)
	// Grafana's variable query functions that wrap a selector or expression.
	grafanaVariableQuery = regexp.MustCompile(`^\s*(label_values|query_result|metrics)\((.*)\)\s*$`)
)

// dashboardQueries returns every PromQL expression in a Grafana dashboard:
// each "expr" (panel targets, also inside rows, and annotations) and each
// query variable, with Grafana's variables replaced: first by vars when it is
// not nil, then any left by values that parse.
func dashboardQueries(t *testing.T, file string, vars *strings.Replacer) []query {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var d any
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var qs []query
	var walk func(v any, where string)
	walk = func(v any, where string) {
		switch v := v.(type) {
		case map[string]any:
			if title, ok := v["title"].(string); ok {
				where = "panel " + fmt.Sprintf("%q", title)
			}
			if name, ok := v["name"].(string); ok && where == "" {
				where = "annotation " + fmt.Sprintf("%q", name)
			}
			if expr, ok := v["expr"].(string); ok {
				qs = append(qs, query{file: rel(t, file), where: where, expr: grafanaExpr(expr, vars)})
			}
			for k, child := range v {
				if k == "templating" {
					continue
				}
				walk(child, where)
			}
		case []any:
			for _, child := range v {
				walk(child, where)
			}
		}
	}
	top, _ := d.(map[string]any)
	walk(top["panels"], "")
	walk(top["annotations"], "")

	tmpl, _ := top["templating"].(map[string]any)
	tvars, _ := tmpl["list"].([]any)
	for _, v := range tvars {
		v, _ := v.(map[string]any)
		if v["type"] != "query" {
			continue
		}
		q, _ := v["definition"].(string)
		if q == "" {
			switch x := v["query"].(type) {
			case string:
				q = x
			case map[string]any:
				q, _ = x["query"].(string)
			}
		}
		if m := grafanaVariableQuery.FindStringSubmatch(q); m != nil {
			q = m[2]
			if m[1] == "label_values" {
				// label_values(selector, label): keep the selector.
				if i := strings.LastIndex(q, ","); i >= 0 {
					q = q[:i]
				}
			}
		}
		qs = append(qs, query{file: rel(t, file), where: fmt.Sprintf("variable %v", v["name"]), expr: grafanaExpr(q, vars)})
	}
	return qs
}

func grafanaExpr(expr string, vars *strings.Replacer) string {
	expr = grafanaDuration.ReplaceAllString(expr, "5m")
	if vars != nil {
		expr = vars.Replace(expr)
	}
	return grafanaVariable.ReplaceAllString(expr, "x")
}

func rel(t *testing.T, file string) string {
	r, err := filepath.Rel(root(t), file)
	if err != nil {
		return file
	}
	return r
}
