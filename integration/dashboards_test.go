package integration

import (
	"encoding/json"
	"os"
	"testing"
)

type dashboard struct {
	UID           string                    `json:"uid"`
	Title         string                    `json:"title"`
	SchemaVersion int                       `json:"schemaVersion"`
	ID            *int                      `json:"id"`
	Panels        []panel                   `json:"panels"`
	Templating    struct{ List []variable } `json:"templating"`
}

type panel struct {
	ID         int                 `json:"id"`
	Type       string              `json:"type"`
	Title      string              `json:"title"`
	GridPos    *struct{ W, H int } `json:"gridPos"`
	Datasource *datasource         `json:"datasource"`
	Targets    []struct {
		Datasource *datasource `json:"datasource"`
		Expr       string      `json:"expr"`
		RefID      string      `json:"refId"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type variable struct {
	Name       string      `json:"name"`
	Type       string      `json:"type"`
	Query      any         `json:"query"`
	Datasource *datasource `json:"datasource"`
}

// TestDashboardsWellFormed checks what Grafana needs to import the dashboards
// anywhere: a unique uid, no fixed id, a recent schema, the datasource as the
// ${datasource} variable everywhere, the job, module and instance variables,
// and panels with unique ids, a size and queries.
func TestDashboardsWellFormed(t *testing.T) {
	uids := map[string]string{}
	for _, f := range glob(t, "dashboards/*.json") {
		t.Run(rel(t, f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var d dashboard
			if err := json.Unmarshal(data, &d); err != nil {
				t.Fatal(err)
			}
			if d.UID == "" || d.Title == "" {
				t.Errorf("uid %q, title %q: both are required", d.UID, d.Title)
			}
			if other, dup := uids[d.UID]; dup {
				t.Errorf("uid %q is also used by %s", d.UID, other)
			}
			uids[d.UID] = rel(t, f)
			if d.ID != nil {
				t.Errorf("id is %d: it must be null so the dashboard imports into any Grafana", *d.ID)
			}
			if d.SchemaVersion < 36 {
				t.Errorf("schemaVersion %d: want 36 or later", d.SchemaVersion)
			}
			vars := map[string]variable{}
			for _, v := range d.Templating.List {
				vars[v.Name] = v
			}
			if v := vars["datasource"]; v.Type != "datasource" || v.Query != "prometheus" {
				t.Errorf("datasource variable %+v: want a prometheus datasource variable", v)
			}
			for _, name := range []string{"job", "module", "instance"} {
				v, ok := vars[name]
				if !ok || v.Type != "query" || v.Datasource == nil || v.Datasource.UID != "${datasource}" {
					t.Errorf("variable %s: %+v, want a query variable on ${datasource}", name, v)
				}
			}
			ids := map[int]bool{}
			var check func(ps []panel)
			check = func(ps []panel) {
				for _, p := range ps {
					if ids[p.ID] {
						t.Errorf("panel %q: id %d is used twice", p.Title, p.ID)
					}
					ids[p.ID] = true
					if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 {
						t.Errorf("panel %q has no size", p.Title)
					}
					check(p.Panels)
					if p.Type == "row" {
						continue
					}
					if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
						t.Errorf("panel %q: datasource %+v, want ${datasource}", p.Title, p.Datasource)
					}
					if len(p.Targets) == 0 {
						t.Errorf("panel %q has no query", p.Title)
					}
					for _, q := range p.Targets {
						if q.Expr == "" || q.RefID == "" || q.Datasource == nil || q.Datasource.UID != "${datasource}" {
							t.Errorf("panel %q: query %+v needs expr, refId and the ${datasource} datasource", p.Title, q)
						}
					}
				}
			}
			check(d.Panels)
		})
	}
}
