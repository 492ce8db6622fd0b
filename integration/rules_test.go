package integration

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/isp-checker/isp-checker/config"
)

// The tools are Debian's prometheus package (promtool), docker-compose, and
// helm from `go install` (scripts/deps.sh installs all three). Each test skips
// when its tool is missing, and fails instead with CI=true.

func TestPromtoolCheckRules(t *testing.T) {
	promtool := tool(t, "promtool")
	args := append([]string{"check", "rules"}, glob(t, "alerts/*.yml")...)
	out := run(t, root(t), promtool, args...)
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool check rules:\n%s", out)
	}
}

func TestPromtoolTestRules(t *testing.T) {
	promtool := tool(t, "promtool")
	args := append([]string{"test", "rules"}, glob(t, "alerts/tests/*.yml")...)
	out := run(t, root(t), promtool, args...)
	if strings.Contains(out, "FAILED") || !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules:\n%s", out)
	}
}

// TestPromtoolCheckExampleConfigs checks the example Prometheus configs (and
// the rule files they load).
func TestPromtoolCheckExampleConfigs(t *testing.T) {
	promtool := tool(t, "promtool")
	files := append(glob(t, "examples/prometheus/*.yml"), glob(t, "examples/compose/prometheus.yml")...)
	for _, f := range files {
		t.Run(rel(t, f), func(t *testing.T) {
			run(t, filepath.Dir(f), promtool, "check", "config", filepath.Base(f))
		})
	}
}

// TestEveryAlertIsUnitTested makes sure each alert in alerts/ appears in a
// promtool test file, so a new alert cannot land without one.
func TestEveryAlertIsUnitTested(t *testing.T) {
	var tests bytes.Buffer
	for _, f := range glob(t, "alerts/tests/*.yml") {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		tests.Write(data)
	}
	for _, f := range glob(t, "alerts/*.yml") {
		for _, q := range ruleQueries(t, f) {
			if q.alert != "" && !strings.Contains(tests.String(), "alertname: "+q.alert+"\n") {
				t.Errorf("%s: alert %s has no test in alerts/tests/", rel(t, f), q.alert)
			}
		}
	}
}

// TestAlertsHaveSeverityAndText: every alert has for:, a severity and the
// summary and description a person on call reads.
func TestAlertsHaveSeverityAndText(t *testing.T) {
	for _, f := range glob(t, "alerts/*.yml") {
		var rf struct {
			Groups []struct {
				Rules []map[string]any `yaml:"rules"`
			} `yaml:"groups"`
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(data, &rf); err != nil {
			t.Fatal(err)
		}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				name, _ := r["alert"].(string)
				if name == "" {
					continue
				}
				if _, ok := r["for"]; !ok {
					t.Errorf("%s: %s has no for:", rel(t, f), name)
				}
				labels, _ := r["labels"].(map[string]any)
				if sev := labels["severity"]; !slices.Contains([]any{"critical", "warning", "info"}, sev) {
					t.Errorf("%s: %s: severity %v, want critical, warning or info", rel(t, f), name, sev)
				}
				ann, _ := r["annotations"].(map[string]any)
				for _, k := range []string{"summary", "description"} {
					if s, _ := ann[k].(string); len(s) < 20 {
						t.Errorf("%s: %s: annotation %s is missing or too short: %q", rel(t, f), name, k, s)
					}
				}
			}
		}
	}
}

// TestChartRulesMatchAlerts: the Helm chart ships a copy of the alert rules
// (a chart cannot read files outside its directory); it must not drift.
func TestChartRulesMatchAlerts(t *testing.T) {
	for _, f := range glob(t, "alerts/*.rules.yml") {
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		copyPath := filepath.Join(root(t), "charts/isp-checker/files", filepath.Base(f))
		got, err := os.ReadFile(copyPath)
		if err != nil {
			t.Fatalf("the chart has no copy of %s: %v", rel(t, f), err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s: run cp %s %s", rel(t, copyPath), rel(t, f), rel(t, f), rel(t, copyPath))
		}
	}
}

// TestExampleConfigsLoad loads the example exporter configuration and the
// Helm chart's default one, and checks that every module the example scrape
// configs and targets name exists in them.
func TestExampleConfigsLoad(t *testing.T) {
	example, err := config.LoadFile(filepath.Join(root(t), "examples/isp-checker.yml"))
	if err != nil {
		t.Fatalf("examples/isp-checker.yml: %v", err)
	}
	var values struct {
		Config yaml.Node `yaml:"config"`
	}
	data, err := os.ReadFile(filepath.Join(root(t), "charts/isp-checker/values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &values); err != nil {
		t.Fatal(err)
	}
	chartYAML, err := yaml.Marshal(&values.Config)
	if err != nil {
		t.Fatal(err)
	}
	chart, err := config.Load(chartYAML, "")
	if err != nil {
		t.Fatalf("charts/isp-checker/values.yaml config: %v", err)
	}
	for name := range chart.Modules {
		if _, ok := example.Modules[name]; !ok {
			t.Errorf("the chart's module %s is not in examples/isp-checker.yml", name)
		}
	}
	files := append(glob(t, "examples/prometheus/*.yml"), glob(t, "examples/prometheus/targets/*.yml")...)
	files = append(files, glob(t, "examples/compose/prometheus.yml")...)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range modulesNamed(t, data) {
			if _, ok := example.Modules[m]; !ok {
				t.Errorf("%s uses module %q, which examples/isp-checker.yml does not define", rel(t, f), m)
			}
		}
	}
}

// modulesNamed finds the module names in a Prometheus config (params.module)
// or a file_sd target file (labels.module).
func modulesNamed(t *testing.T, data []byte) []string {
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var mods []string
	var walk func(v any, key string)
	walk = func(v any, key string) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				walk(c, k)
			}
		case []any:
			for _, c := range v {
				walk(c, key)
			}
		case string:
			if key == "module" {
				mods = append(mods, v)
			}
		}
	}
	walk(doc, "")
	return mods
}

func TestDockerComposeConfig(t *testing.T) {
	compose := tool(t, "docker-compose")
	run(t, root(t), compose, "-f", "examples/compose/docker-compose.yml", "config", "-q")
}

func TestHelmLint(t *testing.T) {
	helm := tool(t, "helm", goBin(t)...)
	out := run(t, root(t), helm, "lint", "--strict", "charts/isp-checker")
	if !strings.Contains(out, "0 chart(s) failed") {
		t.Errorf("helm lint:\n%s", out)
	}
	run(t, root(t), helm, "lint", "--strict", "charts/isp-checker", "--set", allFeatures)
}

// allFeatures turns on every optional object of the chart.
const allFeatures = "serviceMonitor.enabled=true,prometheusRule.enabled=true," +
	"probes[0].name=web,probes[0].module=http_2xx,probes[0].targets[0]=https://example.com," +
	"probes[0].labels.team=web,probes[1].name=gateway,probes[1].module=icmp_loss,probes[1].targets[0]=192.0.2.1," +
	"runCronJob.enabled=true,runCronJob.pushgateway=http://pushgateway.monitoring:9091,autoscaling.enabled=true"

func TestHelmTemplate(t *testing.T) {
	helm := tool(t, "helm", goBin(t)...)

	t.Run("defaults", func(t *testing.T) {
		objs := helmTemplate(t, helm)
		kinds := kindsOf(objs)
		if want := []string{"ConfigMap", "Deployment", "Service", "ServiceAccount"}; !slices.Equal(kinds, want) {
			t.Errorf("kinds %v, want %v (the operator objects are off by default)", kinds, want)
		}
		checkDeployment(t, objs)
	})

	t.Run("everything", func(t *testing.T) {
		objs := helmTemplate(t, helm, "--set", allFeatures)
		kinds := kindsOf(objs)
		want := []string{"ConfigMap", "CronJob", "Deployment", "HorizontalPodAutoscaler", "Probe", "Probe", "PrometheusRule", "Service", "ServiceAccount", "ServiceMonitor"}
		if !slices.Equal(kinds, want) {
			t.Errorf("kinds %v, want %v", kinds, want)
		}
		for _, o := range objs {
			switch o["kind"] {
			case "Probe":
				spec := o["spec"].(map[string]any)
				prober := spec["prober"].(map[string]any)
				if prober["path"] != "/probe" || !strings.HasPrefix(prober["url"].(string), "rel-isp-checker.") {
					t.Errorf("Probe prober: %v", prober)
				}
				labels := spec["targets"].(map[string]any)["staticConfig"].(map[string]any)["labels"].(map[string]any)
				if labels["module"] != spec["module"] {
					t.Errorf("Probe %v: module label %v, want %v", o["metadata"], labels["module"], spec["module"])
				}
			case "PrometheusRule":
				// The rules as rendered must still be valid rules.
				promtool := tool(t, "promtool")
				spec, err := yaml.Marshal(o["spec"])
				if err != nil {
					t.Fatal(err)
				}
				f := filepath.Join(t.TempDir(), "rendered.rules.yml")
				if err := os.WriteFile(f, spec, 0o600); err != nil {
					t.Fatal(err)
				}
				out := run(t, root(t), promtool, "check", "rules", f)
				want := fmt.Sprintf("SUCCESS: %d rules found", len(ruleQueries(t, filepath.Join(root(t), "alerts/isp-checker.rules.yml"))))
				if !strings.Contains(out, want) {
					t.Errorf("rendered PrometheusRule: want %q in\n%s", want, out)
				}
			}
		}
	})

	// A route prefix moves every path the cluster uses to reach the
	// exporter: the health probes, the ServiceMonitor and the Probes.
	t.Run("route prefix", func(t *testing.T) {
		objs := helmTemplate(t, helm, "--set", allFeatures+",routePrefix=bb/")
		paths := map[string]any{}
		for _, o := range objs {
			spec, _ := o["spec"].(map[string]any)
			switch o["kind"] {
			case "Deployment":
				c := spec["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
				if !slices.Contains(c["args"].([]any), any("--web.route-prefix=/bb")) {
					t.Errorf("args %v: want --web.route-prefix=/bb", c["args"])
				}
				paths["liveness"] = c["livenessProbe"].(map[string]any)["httpGet"].(map[string]any)["path"]
				paths["readiness"] = c["readinessProbe"].(map[string]any)["httpGet"].(map[string]any)["path"]
			case "ServiceMonitor":
				paths["metrics"] = spec["endpoints"].([]any)[0].(map[string]any)["path"]
			case "Probe":
				paths["probe"] = spec["prober"].(map[string]any)["path"]
			}
		}
		want := map[string]any{"liveness": "/bb/-/healthy", "readiness": "/bb/-/ready", "metrics": "/bb/metrics", "probe": "/bb/probe"}
		if !maps.Equal(paths, want) {
			t.Errorf("paths %v, want %v", paths, want)
		}
	})

	t.Run("cron job and autoscaler", func(t *testing.T) {
		objs := helmTemplate(t, helm, "--set", "runCronJob.enabled=true,runCronJob.pushgateway=http://pushgateway.monitoring:9091,autoscaling.enabled=true,autoscaling.maxReplicas=6")
		checkCronJob(t, objs, false)
		for _, o := range objs {
			switch o["kind"] {
			case "Deployment":
				if _, ok := o["spec"].(map[string]any)["replicas"]; ok {
					t.Error("the Deployment sets replicas although the autoscaler owns them")
				}
			case "HorizontalPodAutoscaler":
				spec := o["spec"].(map[string]any)
				ref := spec["scaleTargetRef"].(map[string]any)
				if ref["kind"] != "Deployment" || ref["name"] != "rel-isp-checker" || spec["maxReplicas"] != 6 || spec["minReplicas"] != 1 {
					t.Errorf("HorizontalPodAutoscaler spec %v", spec)
				}
			}
		}
		checkCronJob(t, helmTemplate(t, helm, "--set", "runCronJob.enabled=true,runCronJob.pushgateway=http://p:9091,runCronJob.hostNetwork=true"), true)
	})

	t.Run("cron job needs a pushgateway and an isp module", func(t *testing.T) {
		for set, want := range map[string]string{
			"runCronJob.enabled=true": "runCronJob.pushgateway is required",
			"runCronJob.enabled=true,runCronJob.pushgateway=http://p:9091,runCronJob.module=nope":     `runCronJob.module "nope" is not in config.modules`,
			"runCronJob.enabled=true,runCronJob.pushgateway=http://p:9091,runCronJob.module=http_2xx": `uses the http prober; the run needs an isp module`,
		} {
			out, err := runErr(root(t), helm, "template", "rel", "charts/isp-checker", "--set", set)
			if err == nil || !strings.Contains(out, want) {
				t.Errorf("--set %s: want an error with %q, got %v:\n%s", set, want, err, out)
			}
		}
	})

	t.Run("unknown module", func(t *testing.T) {
		out, err := runErr(root(t), helm, "template", "rel", "charts/isp-checker",
			"--set", "probes[0].name=x,probes[0].module=nope,probes[0].targets[0]=a")
		if err == nil || !strings.Contains(out, `module "nope" is not in config.modules`) {
			t.Errorf("want an error naming the module, got %v:\n%s", err, out)
		}
	})
}

// checkCronJob: the scheduled run pushes, exits 0 on any verdict, is not
// retried, runs non-root with NET_RAW only and the exporter's configuration;
// with hostNetwork it leaves the node's sysctls alone.
func checkCronJob(t *testing.T, objs []map[string]any, hostNetwork bool) {
	t.Helper()
	for _, o := range objs {
		if o["kind"] != "CronJob" {
			continue
		}
		spec := o["spec"].(map[string]any)
		job := spec["jobTemplate"].(map[string]any)["spec"].(map[string]any)
		pod := job["template"].(map[string]any)["spec"].(map[string]any)
		c := pod["containers"].([]any)[0].(map[string]any)
		var args []string
		for _, a := range c["args"].([]any) {
			args = append(args, a.(string))
		}
		for _, want := range []string{"run", "--config.file=/etc/isp-checker/config.yml", "--module=isp", "--push-instance=rel-isp-checker", "--no-verdict-exit-code"} {
			if !slices.Contains(args, want) {
				t.Errorf("CronJob args %v lack %q", args, want)
			}
		}
		if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--push=http://") }) {
			t.Errorf("CronJob args %v lack --push", args)
		}
		if spec["concurrencyPolicy"] != "Forbid" || job["backoffLimit"] != 0 || pod["restartPolicy"] != "Never" {
			t.Errorf("CronJob: concurrencyPolicy %v, backoffLimit %v, restartPolicy %v", spec["concurrencyPolicy"], job["backoffLimit"], pod["restartPolicy"])
		}
		caps := c["securityContext"].(map[string]any)["capabilities"].(map[string]any)
		if !slices.Equal(caps["add"].([]any), []any{"NET_RAW"}) || !slices.Equal(caps["drop"].([]any), []any{"ALL"}) {
			t.Errorf("CronJob capabilities %v: want drop ALL, add NET_RAW only", caps)
		}
		psc := pod["securityContext"].(map[string]any)
		_, sysctls := psc["sysctls"]
		if psc["runAsNonRoot"] != true || sysctls == hostNetwork || (pod["hostNetwork"] == true) != hostNetwork {
			t.Errorf("CronJob pod: securityContext %v, hostNetwork %v (want %v)", psc, pod["hostNetwork"], hostNetwork)
		}
		vols := pod["volumes"].([]any)
		if cm := vols[0].(map[string]any)["configMap"].(map[string]any); cm["name"] != "rel-isp-checker" {
			t.Errorf("CronJob config volume %v", cm)
		}
		return
	}
	t.Error("no CronJob rendered")
}

// checkDeployment: non-root, and NET_RAW the only capability.
func checkDeployment(t *testing.T, objs []map[string]any) {
	t.Helper()
	for _, o := range objs {
		if o["kind"] != "Deployment" {
			continue
		}
		pod := o["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
		psc := pod["securityContext"].(map[string]any)
		if psc["runAsNonRoot"] != true || psc["runAsUser"] == 0 {
			t.Errorf("pod securityContext %v: want runAsNonRoot and a non-zero runAsUser", psc)
		}
		c := pod["containers"].([]any)[0].(map[string]any)
		caps := c["securityContext"].(map[string]any)["capabilities"].(map[string]any)
		if !slices.Equal(caps["add"].([]any), []any{"NET_RAW"}) || !slices.Equal(caps["drop"].([]any), []any{"ALL"}) {
			t.Errorf("capabilities %v: want drop ALL, add NET_RAW only", caps)
		}
		return
	}
	t.Error("no Deployment rendered")
}

func helmTemplate(t *testing.T, helm string, args ...string) []map[string]any {
	t.Helper()
	out := run(t, root(t), helm, append([]string{"template", "rel", "charts/isp-checker"}, args...)...)
	var objs []map[string]any
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var o map[string]any
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("helm template output is not YAML: %v\n%s", err, out)
		}
		if o != nil {
			objs = append(objs, o)
		}
	}
	return objs
}

func kindsOf(objs []map[string]any) []string {
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o["kind"].(string))
	}
	slices.Sort(kinds)
	return kinds
}
