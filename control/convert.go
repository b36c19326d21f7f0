// SPDX-License-Identifier: Apache-2.0

//go:build linux

package control

import (
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/api"
	"github.com/udsvisor/udsvisor/config"
	"github.com/udsvisor/udsvisor/supervisor"
)

// apiService is st as the API shows it at now.
func apiService(st supervisor.Status, now time.Time) api.Service {
	return convert(st, now, true)
}

// convert is st as the API shows it at now; without every, the processes
// of a service of one instance are left out, which the status table
// does not show.
func convert(st supervisor.Status, now time.Time, every bool) api.Service {
	a := api.Service{
		Name: st.Name, State: string(st.State), Since: st.Since, Pid: st.Pid, Pids: []int{},
		Restarts: st.Restarts, Failures: st.Failures, LastError: st.LastError,
		StatusText: st.StatusText, MainPid: st.MainPid,
		Sockets: apiSockets(st.Sockets), LastExit: apiExit(st.LastExit),
		WantedInstances: st.Wanted,
	}
	withProcesses := every || len(st.Instances) > 1
	if withProcesses {
		a.Processes = make([]api.Process, 0, len(st.Instances)) // [] rather than null on the wire
	}
	if st.Pid != 0 {
		started := st.StartedAt
		a.StartedAt = &started
		a.UptimeSeconds = now.Sub(started).Seconds()
	}
	for _, in := range st.Instances {
		if in.Pid != 0 {
			a.Pids = append(a.Pids, in.Pid)
		}
		if !withProcesses {
			continue
		}
		p := api.Process{
			Instance: in.Index, State: string(in.State), Pid: in.Pid, Restarts: in.Restarts,
			Failures: in.Failures, LastExit: apiExit(in.LastExit), StatusText: in.StatusText, Leaving: in.Leaving,
		}
		if in.Pid != 0 {
			started := in.StartedAt
			p.StartedAt = &started
		}
		a.Processes = append(a.Processes, p)
	}
	a.Instances = len(a.Pids)
	return a
}

// apiExit is how the API shows an Exit; nil for none.
func apiExit(ex *supervisor.Exit) *api.Exit {
	if ex == nil {
		return nil
	}
	e := &api.Exit{Pid: ex.Pid, Time: ex.Time, Description: ex.String()}
	if ex.Status.Exited() {
		code := ex.Status.ExitStatus()
		e.Code = &code
	} else if ex.Status.Signaled() {
		e.Signal = unix.SignalName(ex.Status.Signal())
	}
	return e
}

// apiServices converts sts for the JSON answer (every true) or the
// status table.
func apiServices(sts []supervisor.Status, every bool) []api.Service {
	now := time.Now()
	out := make([]api.Service, len(sts))
	for i, st := range sts {
		out[i] = convert(st, now, every)
	}
	return out
}

// apiSockets is how the API shows a service's sockets.
func apiSockets(socks []*config.Socket) []api.Socket {
	out := make([]api.Socket, 0, len(socks))
	for _, c := range socks {
		sock := api.Socket{Name: c.Name, FD: c.FD}
		if c.IsUnix() {
			sock.Path = c.Path
			sock.Owner = c.OwnerName
			sock.Group = c.GroupName
			sock.Mode = octalMode(uint32(c.Mode.Perm()))
		} else {
			sock.Address = c.Addr.String()
		}
		out = append(out, sock)
	}
	return out
}

// octalMode formats permission bits as "0660".
func octalMode(m uint32) string {
	s := strconv.FormatUint(uint64(m), 8)
	for len(s) < 4 {
		s = "0" + s
	}
	return s
}
