// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"go.uber.org/zap"

	"github.com/udsvisor/udsvisor/config"
	"github.com/udsvisor/udsvisor/sockets"
)

// The listener pool: every socket of the config, bound once by the run
// goroutine and shared by the services that name it. A reload keeps the
// listeners whose socketKey stays, binds the new ones and closes the
// rest; no restart of a service ever touches them.

// pooled is a bound listener and when it was bound.
type pooled struct {
	*sockets.Listener
	seq uint64
}

// socketKey identifies a socket across configs: the same key means the
// same bound listener can serve it. The backlog is not part of it: a
// reload applies a new backlog to the live socket.
func socketKey(c *config.Socket) string { return socketKeyOf(socketSpec(c)) }

// socketKeyOf is the key of a bound listener's spec.
func socketKeyOf(spec sockets.Spec) string {
	if spec.Path != "" {
		return "unix:" + spec.Path
	}
	return "tcp:" + spec.Addr.String()
}

// bindAll returns a pool with a listener for every socket of cfg, taking
// those already in have and binding the others. On error it closes what
// it bound (not what it took from have) and returns the error.
func (r *runner) bindAll(cfg *config.Config, have map[string]*pooled) (map[string]*pooled, error) {
	pool := make(map[string]*pooled)
	var fresh []*sockets.Listener
	for _, c := range cfg.Services {
		for _, sock := range c.Sockets {
			key := socketKey(sock)
			if l, ok := have[key]; ok {
				pool[key] = l
				continue
			}
			l, err := sockets.Bind(socketSpec(sock))
			if err != nil {
				for i := len(fresh) - 1; i >= 0; i-- {
					fresh[i].Close()
				}
				return nil, fmt.Errorf("service %s: %w", c.Name, err)
			}
			fresh = append(fresh, l)
			r.bound++
			pool[key] = &pooled{Listener: l, seq: r.bound}
			r.log.Info("socket ready", zap.String("service", c.Name), zap.String("socket", sock.Name),
				zap.String("address", sock.String()))
		}
	}
	return pool, nil
}

func socketSpec(c *config.Socket) sockets.Spec {
	return sockets.Spec{
		Path: c.Path, Addr: c.Addr,
		UID: int(c.UID), GID: int(c.GID), Mode: c.Mode, DirMode: c.DirectoryMode,
		Backlog: c.Backlog,
	}
}

// watchNames has the name watch cover every Unix socket of the pool,
// labelled with the services of cfg that use it: a name unlinked while
// it listens is put back at once (sockets.NameWatch).
func (r *runner) watchNames(cfg *config.Config) {
	if r.names == nil {
		return
	}
	users := make(map[string][]string)
	for _, c := range cfg.Services {
		for _, sock := range c.Sockets {
			users[socketKey(sock)] = append(users[socketKey(sock)], c.Name)
		}
	}
	for key, l := range r.pool {
		if err := r.names.Add(l.Listener, strings.Join(users[key], ", ")); err != nil {
			r.log.Warn("cannot watch the socket's name; one unlinked is put back only when its process ends", zap.Error(err))
		}
	}
}

// nameRestored reports a name the watch put back (or could not).
func nameRestored(log *zap.Logger) func(label string, l *sockets.Listener, err error) {
	return func(label string, l *sockets.Listener, err error) {
		if err != nil {
			log.Error("a socket's name was unlinked and cannot be put back", zap.String("services", label), zap.Error(err))
			return
		}
		log.Warn("a socket's name was unlinked while it listens; put it back at once",
			zap.String("services", label), zap.String("path", l.Spec().Path))
	}
}

// closeListeners closes the listeners of pool that keep does not hold,
// removing their socket files, newest first: a directory is removed by
// the Bind that created it, which must come after the sockets bound into
// it later. names, if not nil, stops watching them first.
func closeListeners(pool, keep map[string]*pooled, names *sockets.NameWatch, log *zap.Logger) {
	var ls []*pooled
	for key, l := range pool {
		if _, ok := keep[key]; !ok {
			ls = append(ls, l)
		}
	}
	sort.Slice(ls, func(i, j int) bool { return ls[i].seq > ls[j].seq })
	for _, l := range ls {
		if names != nil {
			names.Remove(l.Listener)
		}
		if err := l.Close(); err != nil {
			log.Warn("remove socket", zap.Error(err))
		}
	}
}

// mendSocket repairs what a process that just exited may have done to
// its socket. A process shares the open file description of the listening
// socket, so its shutdown(2) kills the socket for everyone (connects are
// refused, and no listen(2) revives it): such a socket is replaced by a
// new one at the same name, which the next process receives. A name the
// process unlinked (gunicorn does, SECURITY-NOTES 0.11) is linked again to
// the same socket.
func mendSocket(l *sockets.Listener, log svcLog) {
	addr := zap.String("address", l.Spec().String())
	err := l.Check()
	switch {
	case errors.Is(err, sockets.ErrPoisoned):
		log.Warn("socket was shut down by a process; rebinding it", addr, zap.Error(err))
		if err := l.Rebind(); err != nil {
			log.Error("rebind socket", addr, zap.Error(err))
		}
		return
	case err != nil:
		log.Error("check socket", addr, zap.Error(err))
	}
	restored, err := l.Restore()
	switch {
	case err != nil:
		log.Error("socket name is gone and cannot be restored", zap.Error(err))
	case restored:
		log.Warn("socket name was unlinked; restored it", zap.String("path", l.Spec().Path))
	}
}

// The fds the supervisor holds for a config, for FDsNeeded: its own (the
// runtime's, the log's, the launcher's socket pair, the output, reaper
// and name-watch machinery), each socket's (the socket, an O_PATH fd of its
// node and of its directories) and each service's (the read ends of its
// output pipes, plus the pipes of a launch in progress), for each of its
// instances.
const (
	fdsOwn        = 29
	fdsPerSocket  = 4
	fdsPerService = 12
)

// FDsNeeded is how many fds the supervisor needs to run cfg, so that its
// caller can tell what is left of RLIMIT_NOFILE for itself (control
// connections) without taking the fds a restart needs.
func FDsNeeded(cfg *config.Config) uint64 {
	need := uint64(fdsOwn)
	for _, svc := range cfg.Services {
		need += uint64(fdsPerService*svc.Instances + fdsPerSocket*len(svc.Sockets))
	}
	return need
}
