// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"fmt"
	"os"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/config"
	"github.com/udsvisor/udsvisor/sockets"
)

// maxSavedText bounds the strings of a saved instance: a child's STATUS=
// text is capped when read, and an error is udsvisor's own. A state with
// longer ones was not written by udsvisor (systemd's CVE-2018-15686 let
// an over-long STATUS= inject state across a re-exec).
const maxSavedText = 4096

// adoption is what Adopt checked, for Run to take up.
type adoption struct {
	pool     map[string]*pooled
	services map[string]*SavedService
	notify   map[*SavedInstance]int // the notify socket fd of each instance that has one
	outputs  []SavedOutput
	fd       func(i int) (int, error)
}

// Adopt returns a Supervisor for cfg that takes over the services saved
// by Handover in the program an upgrade executed, in the same process:
// Run then supervises the processes that run, with the sockets, pipes
// and notify sockets they have, and starts nothing. fd maps the indexes
// of saved to this process's fds, each at most once.
//
// It checks the state as if it came from anywhere (T24): each socket is
// the listening socket, node and directories it claims to be and belongs
// to a socket of cfg; each service is one of cfg's, with its instances in
// order; each pid is an unreaped child of this process and the leader of
// its process group, and no pid is claimed twice; each pipe and notify
// socket is one; strings and numbers are within udsvisor's own bounds.
// On error nothing has changed and no fd was closed.
func Adopt(cfg *config.Config, log *zap.Logger, opts Options, saved *Saved, fd func(i int) (int, error)) (*Supervisor, error) {
	a, err := checkSaved(cfg, saved, fd)
	if err != nil {
		return nil, err
	}
	s := New(cfg, log, opts)
	s.adopted = a
	return s, nil
}

// CheckSaved runs the checks of Adopt that need neither the fds nor the
// processes: what the program that wrote saved can ask of it before the
// exec, so that, should the next program refuse, its own way back does
// not refuse too.
func CheckSaved(cfg *config.Config, saved *Saved) error {
	_, err := checkSaved(cfg, saved, nil)
	return err
}

// checkSaved is Adopt's checks, and with fd nil only those of the
// content.
func checkSaved(cfg *config.Config, saved *Saved, fd func(i int) (int, error)) (*adoption, error) {
	a := &adoption{pool: make(map[string]*pooled), services: make(map[string]*SavedService),
		notify: make(map[*SavedInstance]int), fd: fd}
	pids := make(map[int]string)
	for i := range saved.Services {
		sv := &saved.Services[i]
		if a.services[sv.Name] != nil {
			return nil, fmt.Errorf("service %q given twice", sv.Name)
		}
		a.services[sv.Name] = sv
	}
	if len(a.services) != len(cfg.Services) {
		return nil, fmt.Errorf("%d services handed over, %s has %d", len(a.services), cfg.File, len(cfg.Services))
	}
	for _, c := range cfg.Services {
		sv := a.services[c.Name]
		if sv == nil {
			return nil, fmt.Errorf("service %s was not handed over", c.Name)
		}
		if err := a.check(c, sv, pids); err != nil {
			return nil, fmt.Errorf("service %s: %w", c.Name, err)
		}
	}
	want := make(map[string]bool)
	for _, c := range cfg.Services {
		for _, sock := range c.Sockets {
			want[socketKey(sock)] = true
		}
	}
	seen := make(map[string]bool)
	for i, ss := range saved.Sockets {
		if !want[ss.Key] || seen[ss.Key] {
			return nil, fmt.Errorf("socket %q: not a socket of %s, or given twice", ss.Key, cfg.File)
		}
		seen[ss.Key] = true
		if fd == nil {
			continue
		}
		l, err := sockets.Adopt(ss.Saved, fd)
		if err != nil {
			return nil, err
		}
		if key := socketKeyOf(l.Spec()); key != ss.Key {
			return nil, fmt.Errorf("socket %q: the saved listener is %s", ss.Key, key)
		}
		a.pool[ss.Key] = &pooled{Listener: l, seq: uint64(i + 1)}
	}
	for key := range want {
		if !seen[key] {
			return nil, fmt.Errorf("socket %q of %s was not handed over", key, cfg.File)
		}
	}
	for _, o := range saved.Outputs {
		sv := a.services[o.Service]
		if sv == nil || o.Index < 0 || o.Index >= config.MaxInstances || (o.Stream != "stdout" && o.Stream != "stderr") || o.Pid < 0 {
			return nil, fmt.Errorf("output %q #%d %q: no such service, instance or stream", o.Service, o.Index, o.Stream)
		}
		if fd == nil {
			continue
		}
		n, err := fd(o.FD)
		if err != nil {
			return nil, fmt.Errorf("output of %s: %w", o.Service, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(n, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
			return nil, fmt.Errorf("output of %s: fd %d is not a pipe", o.Service, n)
		}
		o.FD = n
		a.outputs = append(a.outputs, o)
	}
	return a, nil
}

// check validates the saved state of service c and records its notify
// socket fds; pids collects the pids claimed so far.
func (a *adoption) check(c *config.Service, sv *SavedService, pids map[int]string) error {
	switch {
	case sv.Want < 1 || sv.Want > config.MaxInstances || len(sv.Instances) != sv.Want:
		return fmt.Errorf("%d instances for %d wanted", len(sv.Instances), sv.Want)
	case sv.Rest != Stopped && sv.Rest != Waiting && sv.Rest != Paused:
		return fmt.Errorf("rest state %q", sv.Rest)
	}
	if len(sv.Logs) > logLines {
		return fmt.Errorf("%d log lines, more than %d", len(sv.Logs), logLines)
	}
	for _, l := range sv.Logs {
		if len(l.Line) > maxLine || (l.Stream != "stdout" && l.Stream != "stderr") || l.Instance < 0 || l.Instance >= config.MaxInstances {
			return fmt.Errorf("a log line out of bounds")
		}
	}
	for i := range sv.Instances {
		si := &sv.Instances[i]
		if si.Index != i {
			return fmt.Errorf("instance %d at position %d", si.Index, i)
		}
		if len(si.LastError) > maxSavedText || len(si.StatusText) > maxSavedText || si.Restarts < 0 || si.Failures < 0 ||
			si.TimerLeft < 0 {
			return fmt.Errorf("instance %d: a value out of bounds", i)
		}
		switch si.State {
		case Starting, Running, Reloading:
			if si.Pid <= 1 {
				return fmt.Errorf("instance %d: %s with pid %d", i, si.State, si.Pid)
			}
			// Content only (no fds): the process is not this program's.
			if a.fd != nil {
				if err := checkChild(si.Pid); err != nil {
					return fmt.Errorf("instance %d: %w", i, err)
				}
			}
			if other, ok := pids[si.Pid]; ok {
				return fmt.Errorf("instance %d: pid %d is also %s's", i, si.Pid, other)
			}
			pids[si.Pid] = c.Name
		case Backoff, Stopped, Exited, Failed:
			if si.Pid != 0 || si.Notify != -1 {
				return fmt.Errorf("instance %d: %s with a process", i, si.State)
			}
			continue
		default:
			return fmt.Errorf("instance %d: state %q cannot be handed over", i, si.State)
		}
		if (si.Notify != -1) != (c.Ready == config.ReadyNotify) {
			return fmt.Errorf("instance %d: a notify socket does not match ready = %q", i, c.Ready)
		}
		if si.Notify != -1 && a.fd != nil {
			n, err := a.fd(si.Notify)
			if err != nil {
				return fmt.Errorf("instance %d: notify socket: %w", i, err)
			}
			a.notify[si] = n
		}
	}
	return nil
}

// checkChild reports whether pid is an unreaped child of this process
// (alive or a zombie) that leads its own process group, as every service
// process does (setsid).
func checkChild(pid int) error {
	if pid <= 1 {
		return fmt.Errorf("pid %d", pid)
	}
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil); err != nil {
		return fmt.Errorf("pid %d is not a child of udsvisor: %w", pid, err)
	}
	if pgid, err := unix.Getpgid(pid); err != nil || pgid != pid {
		return fmt.Errorf("pid %d does not lead its process group", pid)
	}
	return nil
}

// adoptServices makes the services of the adoption, with their
// processes registered with the reaper, their notify sockets and their
// output pipes, and starts their goroutines, which arm their timers and
// watches first.
func (r *runner) adoptServices(a *adoption) map[string]*running {
	services := make(map[string]*running, len(r.cfg.Services))
	for _, c := range r.cfg.Services {
		sv := a.services[c.Name]
		logs := newLogRing()
		for _, l := range sv.Logs {
			logs.add(l)
		}
		rs := r.newRunning(c, logs)
		svc := rs.svc
		svc.want, svc.active, svc.rest = sv.Want, sv.Active, sv.Rest
		svc.insts = svc.insts[:0]
		for i := range sv.Instances {
			si := &sv.Instances[i]
			inst := svc.newInstance(si.Index)
			inst.st, inst.since, inst.pid, inst.startedAt, inst.mainPid = si.State, si.Since, si.Pid, si.StartedAt, si.MainPid
			inst.restarts, inst.failures, inst.started = si.Restarts, si.Failures, si.Started
			inst.lastErr, inst.lastExit, inst.statusText = si.LastError, si.LastExit, si.StatusText
			if inst.pid != 0 {
				r.env.reaper.adopt(inst.pid, func(ex Exit) { svc.inbox.post(exitEvent{inst: inst, ex: ex}) })
			}
			if fd, ok := a.notify[si]; ok {
				ns, err := adoptNotifySocket(fd, inst.pid)
				if err != nil {
					inst.log.Error("notify socket lost in the upgrade", zap.Error(err))
				}
				inst.notify = ns
			}
			svc.insts = append(svc.insts, inst)
			svc.adopting = append(svc.adopting, si.TimerLeft)
		}
		// Before the goroutine runs: a status asked right after the
		// take-over sees the processes, not a fresh service's stopped.
		svc.publish()
		services[c.Name] = rs
	}
	for _, o := range a.outputs {
		svc := services[o.Service].svc
		out := &output{o: r.env.outs, log: svc.newInstance(o.Index).log, ring: svc.logs, svc: o.Service,
			stream: o.Stream, r: os.NewFile(uintptr(o.FD), "|0"), pid: o.Pid, index: o.Index}
		out.watch()
	}
	for _, rs := range services {
		go rs.svc.run(rs.ctx)
	}
	return services
}

// resumeAdopted is the first thing an adopted service does on its
// goroutine: it arms the timers and watches its state needs, with what
// was left of each timer.
func (s *service) resumeAdopted() {
	left := s.adopting
	s.adopting = nil
	inherited := socketInodes(s.files())
	for i, inst := range s.insts {
		inst.inherited = inherited
		if inst.notify != nil {
			ns := inst.notify
			ns.start(func(m notifyMsg) { s.inbox.post(noted{inst: inst, msg: m}) })
		}
		switch inst.st {
		case Starting:
			if s.cfg.Ready != config.ReadyNotify {
				ev := accepted{inst: inst, seq: inst.watchSeq}
				inst.watch = watchAccept(s.files(), s.cfg.MinUptime, func() { s.inbox.post(ev) })
			}
			inst.arm(s, timerMain, left[i])
		case Backoff:
			inst.arm(s, timerMain, left[i])
		case Running, Reloading:
			inst.armWatchdog(s)
		}
	}
	switch {
	case !s.active && s.rest == Waiting && !s.busy():
		s.wait()
	case s.active && s.serving():
		s.watchIdle()
	}
	s.publish()
}
