// SPDX-License-Identifier: Apache-2.0

//go:build linux

package control

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/supervisor"
)

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
		if svc.Pid == 0 {
			continue
		}
		secs := float64(svc.StartedAt.UnixNano()) / 1e9
		fmt.Fprintf(&b, "udsvisor_service_start_time_seconds{service=\"%s\"} %s\n",
			escapeLabel(svc.Name), strconv.FormatFloat(secs, 'f', -1, 64))
	}
	family(&b, "udsvisor_service_state", "gauge", "The service's state: 1 for the current one, 0 for the others.")
	// Every state is a sample, so that a query sees 0 as well as 1.
	states := supervisor.States()
	for _, svc := range svcs {
		for _, st := range states {
			v := 0
			if st == svc.State {
				v = 1
			}
			fmt.Fprintf(&b, "udsvisor_service_state{service=\"%s\",state=\"%s\"} %d\n",
				escapeLabel(svc.Name), escapeLabel(string(st)), v)
		}
	}
	// The processes of services of several instances, by index (not
	// "instance": Prometheus gives that label to the scrape target).
	family(&b, "udsvisor_process_up", "gauge", "Whether the instance of a service of several has a live process (1) or not (0).")
	for _, svc := range svcs {
		if current(svc.Instances) < 2 {
			continue
		}
		for _, in := range svc.Instances {
			if in.Leaving {
				continue // its index is also a current instance's
			}
			up := 0
			if in.Pid != 0 {
				up = 1
			}
			fmt.Fprintf(&b, "udsvisor_process_up{service=\"%s\",index=\"%d\"} %d\n", escapeLabel(svc.Name), in.Index, up)
		}
	}
	family(&b, "udsvisor_process_restarts_total", "counter", "Processes started after the first one of the instance of a service of several.")
	for _, svc := range svcs {
		if current(svc.Instances) < 2 {
			continue
		}
		for _, in := range svc.Instances {
			if in.Leaving {
				continue
			}
			fmt.Fprintf(&b, "udsvisor_process_restarts_total{service=\"%s\",index=\"%d\"} %d\n", escapeLabel(svc.Name), in.Index, in.Restarts)
		}
	}
	family(&b, "udsvisor_build_info", "gauge", "Always 1; the labels say which udsvisor runs.")
	fmt.Fprintf(&b, "udsvisor_build_info{version=\"%s\",goversion=\"%s\"} 1\n", escapeLabel(s.opts.Version), escapeLabel(runtime.Version()))
	processFDs(&b)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	w.Write(b.Bytes())
	return nil
}

// processFDs writes udsvisor's open fds and its limit, under the names
// the Prometheus client libraries use: at scale the fd budget is what
// runs out first (each service holds its sockets, their directory and
// node handles and its output pipes). The table counted is this
// thread's, which every thread shares but the launcher's (privdrop).
func processFDs(b *bytes.Buffer) {
	if fds, err := os.ReadDir("/proc/thread-self/fd"); err == nil {
		family(b, "process_open_fds", "gauge", "Number of open file descriptors.")
		fmt.Fprintf(b, "process_open_fds %d\n", len(fds)-1) // less the one ReadDir had open
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err == nil {
		family(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.")
		fmt.Fprintf(b, "process_max_fds %d\n", lim.Cur)
	}
}

func family(b *bytes.Buffer, name, typ, help string) {
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

// labelEscaper escapes a label value as the exposition format requires.
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escapeLabel(v string) string { return labelEscaper.Replace(v) }

// current counts the instances not on their way out: a service of one
// instance has no process metrics, even while an overlapping restart
// runs its replacement beside it.
func current(ins []supervisor.InstanceStatus) int {
	n := 0
	for _, in := range ins {
		if !in.Leaving {
			n++
		}
	}
	return n
}
