package server

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/isp-checker/isp-checker/prober"
)

// logsHandler serves /logs: one probe's debug output, by id=N or, as
// blackbox_exporter's /logs, by target=T with an optional module=M (the
// latest such probe the history holds).
func logsHandler(history *History) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		idText, target, module := q.Get("id"), q.Get("target"), q.Get("module")
		var (
			p  *Probe
			ok bool
		)
		switch {
		case idText != "" && target != "":
			http.Error(w, "Give either id or target, not both", http.StatusBadRequest)
			return
		case target == "" && module != "":
			http.Error(w, "The module only works with target: give target too", http.StatusBadRequest)
			return
		case target != "":
			// The history holds targets as shown (decoded, password hidden):
			// the asked-for target is compared in the same form.
			shown := prober.RedactTarget(decodeEncodedColon(target))
			if p, ok = history.Latest(shown, module); !ok {
				msg := fmt.Sprintf("No probe of target %q", clip(shown, 200))
				if module != "" {
					msg = fmt.Sprintf("No probe of target %q with module %q", clip(shown, 200), clip(module, 100))
				}
				http.Error(w, msg+" in the history (it may have left it)", http.StatusNotFound)
				return
			}
		case idText == "":
			http.Error(w, "Give a probe id or target (/logs?id=N or /logs?target=T&module=M)", http.StatusBadRequest)
			return
		default:
			id, err := strconv.ParseInt(idText, 10, 64)
			if err != nil {
				http.Error(w, "Invalid probe id", http.StatusBadRequest)
				return
			}
			if p, ok = history.Get(id); !ok {
				http.Error(w, "Probe not found (it may have left the history)", http.StatusNotFound)
				return
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte(p.Debug()))
	}
}

// Latest returns the newest remembered probe of target (as shown) and, if
// module is not "", of that module. blackbox_exporter returns the oldest
// it remembers; the newest is what someone asking about a target wants.
func (h *History) Latest(target, module string) (*Probe, bool) {
	for _, p := range h.List() {
		if p.Target == target && (module == "" || p.Module == module) {
			return p, true
		}
	}
	return nil, false
}
