package server

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/isp-checker/isp-checker/config"
)

// TestConfigWatcherCheck: a reload only when the file's content changed
// (not when it is rewritten the same), a broken file keeps the old config
// with the reload gauges at 0 until the content changes again, and a file
// that cannot be read counts as a change.
func TestConfigWatcherCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("modules:\n  first:\n    prober: tcp\n")
	reg := prometheus.NewRegistry()
	holder := config.NewHolder(path, reg)
	w := NewConfigWatcher(path)
	if err := holder.Reload(); err != nil {
		t.Fatal(err)
	}
	reloads := 0
	reload := func() error { reloads++; return holder.Reload() }
	gauge := func() float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "blackbox_exporter_config_last_reload_successful" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("no blackbox_exporter_config_last_reload_successful")
		return -1
	}
	check := func(step string, wantChanged, wantErr bool, wantReloads int, wantModule string, wantGauge float64) {
		t.Helper()
		changed, err := w.Check(reload)
		_, has := holder.Get().Modules[wantModule]
		if changed != wantChanged || (err != nil) != wantErr || reloads != wantReloads || !has || gauge() != wantGauge {
			t.Errorf("%s: changed %v, err %v, %d reloads, module %s loaded %v, gauge %v; want %v, error %v, %d, true, %v",
				step, changed, err, reloads, wantModule, has, gauge(), wantChanged, wantErr, wantReloads, wantGauge)
		}
	}
	check("unchanged", false, false, 0, "first", 1)
	write("modules:\n  first:\n    prober: tcp\n")
	check("rewritten the same", false, false, 0, "first", 1)
	write("modules:\n  second:\n    prober: tcp\n")
	check("changed", true, false, 1, "second", 1)
	check("changed, looked at again", false, false, 1, "second", 1)
	write("modules:\n  third:\n    prober: nope\n")
	check("broken", true, true, 2, "second", 0)
	check("broken, looked at again", false, false, 2, "second", 0)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	changed, err := w.Check(reload)
	if !changed || !errors.Is(err, os.ErrNotExist) || gauge() != 0 {
		t.Errorf("removed: changed %v, err %v, gauge %v; want a reload that failed for the missing file", changed, err, gauge())
	}
	write("modules:\n  fourth:\n    prober: tcp\n")
	check("fixed", true, false, 4, "fourth", 1)
}
