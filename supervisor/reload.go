// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"slices"
	"sort"

	"go.uber.org/zap"

	"github.com/udsvisor/udsvisor/config"
)

// ReloadResult names the services a reload added, removed, changed and
// left alone, each sorted. Failed are the changed services of
// restart_mode = "overlap" whose new definition did not start: the old
// one keeps running, and the next reload tries again.
type ReloadResult struct {
	Added, Removed, Changed, Unchanged, Failed []string
}

// reloadRequest asks the run goroutine to reload; reply has room for the
// answer, so that the run goroutine never waits for a caller that left.
type reloadRequest struct {
	ctx   context.Context
	reply chan reloadReply
}

type reloadReply struct {
	res ReloadResult
	err error
}

// Reload re-reads the config file the supervisor was started with and
// applies the difference without disturbing what did not change:
//
//   - a broken config is rejected whole (config.Errors) and nothing
//     changes; so is one whose new sockets cannot be bound;
//   - new services start; removed services stop and their sockets are
//     removed;
//   - a service whose definition changed is restarted; sockets it keeps
//     (same path or address) stay bound, so no connection is
//     refused during the restart;
//   - a service whose only change is its sockets' owner, group, mode or
//     backlog keeps running: the change is applied to the live socket;
//   - an unchanged service is not touched (same pid, same socket).
//
// The run goroutine does the work, after the first start is done and one
// reload at a time.
func (s *Supervisor) Reload(ctx context.Context) (ReloadResult, error) {
	if v := s.view.Load(); v != nil && v.closing {
		return ReloadResult{}, ErrShuttingDown
	}
	req := reloadRequest{ctx: ctx, reply: make(chan reloadReply, 1)}
	select {
	case s.reloads <- req:
	case <-s.done:
		return ReloadResult{}, ErrShuttingDown
	case <-ctx.Done():
		return ReloadResult{}, ctx.Err()
	}
	select {
	case rep := <-req.reply:
		return rep.res, rep.err
	case <-ctx.Done():
		return ReloadResult{}, ctx.Err()
	}
}

// reload is Reload on the run goroutine.
func (s *Supervisor) reload(ctx context.Context, r *runner) (ReloadResult, error) {
	res := ReloadResult{Added: []string{}, Removed: []string{}, Changed: []string{}, Unchanged: []string{}, Failed: []string{}}
	oldCfg, oldServices, oldPool := r.cfg, r.services, r.pool

	cfg, err := config.Load(oldCfg.File)
	if err != nil {
		return res, err
	}
	for _, w := range cfg.Warnings {
		s.log.Warn("reload: config warning", zap.String("problem", w.Error()))
	}
	cfg.Warnings = nil
	pool, err := r.bindAll(cfg, oldPool)
	if err != nil {
		return res, err
	}
	// The last step that may refuse the reload, so that a refusal
	// leaves everything as it was.
	if cfg.Supervisor != oldCfg.Supervisor && s.opts.Reconfigure != nil {
		if err := s.opts.Reconfigure(oldCfg.Supervisor, cfg.Supervisor); err != nil {
			closeListeners(pool, oldPool, nil, s.log)
			return res, err
		}
	}

	type plan int
	const (
		keep plan = iota
		reown
		restart
		overlap // restart with the new beside the old
		add
	)
	plans := make(map[string]plan, len(cfg.Services))
	var stop []*running
	for _, c := range cfg.Services {
		old, ok := oldServices[c.Name]
		switch {
		case !ok:
			plans[c.Name] = add
			res.Added = append(res.Added, c.Name)
		case sameService(old.svc.cfg, c, false):
			plans[c.Name] = keep
			res.Unchanged = append(res.Unchanged, c.Name)
		case sameService(old.svc.cfg, c, true):
			plans[c.Name] = reown
			res.Changed = append(res.Changed, c.Name)
		case c.RestartMode == config.RestartOverlap && sameSockets(old.svc.cfg, c) && old.svc.snap.Load().State == Running:
			plans[c.Name] = overlap
			res.Changed = append(res.Changed, c.Name)
		default:
			plans[c.Name] = restart
			res.Changed = append(res.Changed, c.Name)
			stop = append(stop, old)
		}
	}
	for name, old := range oldServices {
		if _, ok := plans[name]; !ok {
			res.Removed = append(res.Removed, name)
			stop = append(stop, old)
		}
	}
	sort.Strings(res.Removed)

	// Ownership and backlog first, in place: a service that stays must
	// see its new mode at once, and a failure here still leaves every
	// service running.
	for _, c := range cfg.Services {
		for _, sock := range c.Sockets {
			l := pool[socketKey(sock)]
			spec := l.Spec()
			if sock.IsUnix() && (spec.UID != int(sock.UID) || spec.GID != int(sock.GID) || spec.Mode != sock.Mode) {
				if err := l.SetOwner(int(sock.UID), int(sock.GID), sock.Mode); err != nil {
					s.log.Error("reload: set socket owner", zap.String("service", c.Name), zap.Error(err))
				}
			}
			if spec.Backlog != sock.Backlog {
				if err := l.SetBacklog(sock.Backlog); err != nil {
					s.log.Error("reload: set socket backlog", zap.String("service", c.Name), zap.Error(err))
				}
			}
		}
	}

	// A paused service stays paused under its new definition, and one
	// an operator stopped stays stopped.
	rests := make(map[string]State)
	for _, old := range stop {
		rests[old.svc.cfg.Name] = old.svc.snap.Load().State
	}
	stopServices(stop)
	services := make(map[string]*running, len(cfg.Services))
	r.pool = pool
	r.watchNames(cfg)
	for _, c := range cfg.Services {
		switch plans[c.Name] {
		case keep, reown:
			services[c.Name] = oldServices[c.Name]
		case restart:
			services[c.Name] = r.launchService(c, oldServices[c.Name].svc.logs)
		case overlap:
			services[c.Name] = r.launchService(c, oldServices[c.Name].svc.logs)
			services[c.Name].svc.replacing.Store(oldServices[c.Name].svc)
		case add:
			services[c.Name] = r.launchService(c, newLogRing())
		}
	}
	r.cfg, r.services = cfg, services
	s.view.Store(&view{services: services, cfg: cfg})
	closeListeners(oldPool, pool, r.names, s.log)

	for _, c := range cfg.Services {
		switch plans[c.Name] {
		case reown:
			if err := services[c.Name].svc.call(ctx, request{op: opReconfigure, cfg: c}); err != nil {
				s.log.Error("reload: reconfigure", zap.String("service", c.Name), zap.Error(err))
			}
		case overlap:
			// The old definition serves until the new one has started.
			err := services[c.Name].svc.call(ctx, request{op: opActivate})
			if err == nil {
				err = services[c.Name].svc.call(ctx, request{op: opAwaitStarted})
			}
			replaced, fresh := oldServices[c.Name], services[c.Name]
			// A stop or pause of the new definition meanwhile is the
			// operator's word: the old one goes, the new one rests.
			if err != nil && !errors.Is(err, errStoppedBeforeStart) {
				s.log.Error("reload: the new definition did not start; the old one keeps serving",
					zap.String("service", c.Name), zap.Error(err))
				res.Failed = append(res.Failed, c.Name)
				// The published map is never changed in place:
				// readers may be walking it.
				services = maps.Clone(services)
				replaced, services[c.Name] = services[c.Name], oldServices[c.Name]
				r.services = services
				s.view.Store(&view{services: services, cfg: cfg, stale: slices.Clone(res.Failed)})
			}
			stopServices([]*running{replaced})
			fresh.svc.replacing.Store(nil)
		case restart, add:
			o := opActivate
			switch rests[c.Name] {
			case Paused:
				o = opPause
			case Stopped:
				continue
			}
			if err := services[c.Name].svc.call(ctx, request{op: o}); err != nil {
				s.log.Error("reload: "+o.String(), zap.String("service", c.Name), zap.Error(err))
			}
		}
	}
	s.log.Info("reloaded", zap.Strings("added", res.Added), zap.Strings("removed", res.Removed),
		zap.Strings("changed", res.Changed), zap.Int("unchanged", len(res.Unchanged)), zap.Strings("failed", res.Failed))
	return res, nil
}

// sameSockets reports whether a and b have the same sockets, in the same
// order: an overlap of two definitions shares every listener.
func sameSockets(a, b *config.Service) bool {
	return slices.EqualFunc(a.Sockets, b.Sockets, func(x, y *config.Socket) bool {
		return socketKey(x) == socketKey(y) && x.Name == y.Name
	})
}

// sameService reports whether a and b define the same service, ignoring
// where they are written in the file and, with ignoreOwnership, the
// owner, group, modes and backlog of their sockets (what a reload applies
// to a live socket).
func sameService(a, b *config.Service, ignoreOwnership bool) bool {
	return reflect.DeepEqual(comparableCopy(a, ignoreOwnership), comparableCopy(b, ignoreOwnership))
}

func comparableCopy(c *config.Service, ignoreOwnership bool) config.Service {
	cp := *c
	cp.Line = 0
	// Routes matter to the reverse proxy only, and carry line numbers.
	cp.Proxy = nil
	cp.Sockets = make([]*config.Socket, len(c.Sockets))
	for i, sock := range c.Sockets {
		sc := *sock
		sc.Line = 0
		if ignoreOwnership {
			sc.OwnerName, sc.GroupName, sc.UID, sc.GID, sc.Mode, sc.DirectoryMode = "", "", 0, 0, 0, 0
			sc.Backlog = 0 // applied in place too
		}
		cp.Sockets[i] = &sc
	}
	return cp
}
