package control

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// states are the values of api.Service.State, each a sample of
// udsvisor_service_state so that a query sees 0 as well as 1.
var states = []string{"stopped", "starting", "running", "backoff", "stopping", "exited", "failed"}

// metrics answers GET /metrics in the Prometheus text exposition format
// (version 0.0.4), written by hand to keep the dependency list short.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) error {
	svcs, err := s.b.List(r.Context())
	if err != nil {
		return err
	}
	var b bytes.Buffer
	family(&b, "udsvisor_service_up", "gauge", "Whether the service has a live main process (1) or not (0).")
	for _, svc := range svcs {
		up := 0
		if svc.Pid != 0 {
			up = 1
		}
		fmt.Fprintf(&b, "udsvisor_service_up{service=\"%s\"} %d\n", escapeLabel(svc.Name), up)
	}
	family(&b, "udsvisor_service_restarts_total", "counter", "Processes started after the service's first one.")
	for _, svc := range svcs {
		fmt.Fprintf(&b, "udsvisor_service_restarts_total{service=\"%s\"} %d\n", escapeLabel(svc.Name), svc.Restarts)
	}
	family(&b, "udsvisor_service_start_time_seconds", "gauge",
		"Start time of the service's main process since the Unix epoch; absent when none runs.")
	for _, svc := range svcs {
		if svc.StartedAt == nil {
			continue
		}
		secs := float64(svc.StartedAt.UnixNano()) / 1e9
		fmt.Fprintf(&b, "udsvisor_service_start_time_seconds{service=\"%s\"} %s\n",
			escapeLabel(svc.Name), strconv.FormatFloat(secs, 'f', -1, 64))
	}
	family(&b, "udsvisor_service_state", "gauge", "The service's state: 1 for the current one, 0 for the others.")
	for _, svc := range svcs {
		all := states
		if !slices.Contains(states, svc.State) {
			all = append(slices.Clip(states), svc.State)
		}
		for _, st := range all {
			v := 0
			if st == svc.State {
				v = 1
			}
			fmt.Fprintf(&b, "udsvisor_service_state{service=\"%s\",state=\"%s\"} %d\n",
				escapeLabel(svc.Name), escapeLabel(st), v)
		}
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	w.Write(b.Bytes())
	return nil
}

func family(b *bytes.Buffer, name, typ, help string) {
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

// labelEscaper escapes a label value as the exposition format requires.
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escapeLabel(v string) string { return labelEscaper.Replace(v) }
