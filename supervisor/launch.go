// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/udsvisor/udsvisor/config"
	"github.com/udsvisor/udsvisor/privdrop"
)

// launchStep is a report from a launch in flight. The fork comes first
// (forked, with the pid or why there is none), then, if a process was
// made, whether the helper exec'd the command (err nil) or not.
type launchStep struct {
	inst   *instance
	forked bool
	pid    int
	err    error
	// notify is the process's NOTIFY_SOCKET, with the fork (nil when
	// the service does not speak sd_notify).
	notify *notifySocket
}

// launch starts the launch helper of inst, which becomes the command,
// and posts each step to the service's inbox. It runs on a goroutine of
// its own, so that the service goroutine keeps answering while the
// helper works, and so that the calls deep into the encoder and the
// launcher grow a stack that is given back when it ends, not kept by
// each of 1,000 idle services. It reads only what never changes after
// newService, inst.index and inst.log, and cfg and files, which the
// caller hands over.
func (s *service) launch(inst *instance, c *config.Service, files []*os.File) {
	l, pid, ns, err := s.fork(inst, c, files)
	s.inbox.post(launchStep{inst: inst, forked: true, pid: pid, err: err, notify: ns})
	if err != nil {
		return
	}
	// Blocks until the helper has exec'd the command or reported why not;
	// the instance's helper timer kills a helper that does neither.
	if err := l.AfterStart(); err != nil {
		s.inbox.post(launchStep{inst: inst, err: fmt.Errorf("start %s: %w", c.Name, err)})
		return
	}
	s.inbox.post(launchStep{inst: inst})
}

// fork prepares the helper's spec, output pipes and notify socket and
// forks it.
func (s *service) fork(inst *instance, c *config.Service, files []*os.File) (*privdrop.Launch, int, *notifySocket, error) {
	env := append(s.env[:len(s.env):len(s.env)], "UDSVISOR_INSTANCE="+strconv.Itoa(inst.index))
	var ns *notifySocket
	if c.Ready == config.ReadyNotify {
		var err error
		if ns, err = newNotifySocket(); err != nil {
			return nil, 0, nil, fmt.Errorf("start %s: %w", c.Name, err)
		}
		env = append(env, "NOTIFY_SOCKET="+ns.addr)
		if c.Watchdog > 0 {
			env = append(env, "WATCHDOG_USEC="+strconv.FormatInt(c.Watchdog.Microseconds(), 10))
		}
	}
	l, pid, err := s.forkWith(inst, c, files, env)
	if err != nil {
		if ns != nil {
			ns.close()
		}
		return nil, 0, nil, err
	}
	if ns != nil {
		ns.pid.Store(int64(pid))
		ns.start(func(m notifyMsg) { s.inbox.post(noted{inst: inst, msg: m}) })
	}
	return l, pid, ns, nil
}

func (s *service) forkWith(inst *instance, c *config.Service, files []*os.File, env []string) (*privdrop.Launch, int, error) {
	if c.Relay != nil && s.binary == "" {
		return nil, 0, fmt.Errorf("start %s: a relay needs the udsvisor binary's path, which is not known", c.Name)
	}
	stdout, err := s.outs.pipe(c.Name, inst.log, s.logs, "stdout", inst.index)
	if err != nil {
		return nil, 0, fmt.Errorf("start %s: %w", c.Name, err)
	}
	stderr, err := s.outs.pipe(c.Name, inst.log, s.logs, "stderr", inst.index)
	if err != nil {
		stdout.abort()
		return nil, 0, fmt.Errorf("start %s: %w", c.Name, err)
	}
	// The socket with stdin = true is the command's fd 0; the others
	// are fds 3 and up.
	var stdin *os.File
	numbered := make([]*os.File, 0, len(files))
	for i, f := range files {
		if c.Sockets[i].Stdin {
			stdin = f
		} else {
			numbered = append(numbered, f)
		}
	}
	spec := &privdrop.Spec{
		Path: c.Command[0], Args: c.Command, Env: env, Dir: c.WorkingDir,
		UID: c.UID, GID: c.GID, Groups: c.Groups, Umask: uint32(c.Umask),
		NumFDs: len(numbered), AmbientCaps: c.AmbientCaps,
	}
	if c.Relay != nil {
		spec.Path, spec.Args = s.binary, relayArgs(s.binary, c)
		spec.PrivateNetwork = true
	}
	for _, lim := range c.Limits {
		spec.Rlimits = append(spec.Rlimits, privdrop.Rlimit{Resource: lim.Resource, Cur: lim.Soft, Max: lim.Hard})
	}
	l, err := privdrop.Prepare(s.exe, spec, numbered, stdout.w, stderr.w)
	if err == nil {
		if stdin != nil {
			l.SetStdin(stdin)
		}
		var pid int
		deliver := func(ex Exit) { s.inbox.post(exitEvent{inst: inst, ex: ex}) }
		pid, err = s.reaper.start(func() (int, error) { return s.launcher.Start(l) }, deliver)
		if err == nil {
			stdout.start(pid)
			stderr.start(pid)
			return l, pid, nil
		}
		l.Abort()
	}
	stdout.abort()
	stderr.abort()
	return nil, 0, fmt.Errorf("start %s: %w", c.Name, err)
}

// childEnv builds the environment from scratch: nothing of udsvisor's own
// (NOTIFY_SOCKET, INVOCATION_ID, LD_PRELOAD, secrets) reaches a child.
// LISTEN_PID is added by the launch helper, which alone knows the pid.
func childEnv(cfg *config.Service) []string {
	env := append([]string(nil), cfg.Environment...)
	has := func(key string) bool {
		for _, kv := range env {
			if strings.HasPrefix(kv, key+"=") {
				return true
			}
		}
		return false
	}
	if !has("PATH") {
		env = append(env, "PATH="+config.DefaultPath)
	}
	for _, kv := range [][2]string{{"HOME", cfg.Home}, {"USER", cfg.User}, {"LOGNAME", cfg.User}} {
		if !has(kv[0]) {
			env = append(env, kv[0]+"="+kv[1])
		}
	}
	var names []string
	for _, s := range cfg.Sockets {
		if !s.Stdin { // fd 0 is no part of LISTEN_FDS
			names = append(names, s.Name)
		}
	}
	if len(names) > 0 {
		env = append(env, "LISTEN_FDS="+strconv.Itoa(len(names)), "LISTEN_FDNAMES="+strings.Join(names, ":"))
	}
	return env
}

// relayArgs is the argv of `udsvisor __relay` in front of c's command:
// the relay takes the service's sockets (LISTEN_FDS) and starts the
// command as its child, in the network namespace the launch helper made.
func relayArgs(binary string, c *config.Service) []string {
	args := []string{binary, "__relay", "-port", strconv.Itoa(c.Relay.Port),
		"-connect-timeout", c.Relay.ConnectTimeout.String()}
	if c.Relay.Proxy != "" {
		args = append(args, "-proxy", string(c.Relay.Proxy))
	}
	return append(append(args, "--"), c.Command...)
}
