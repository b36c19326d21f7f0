// SPDX-License-Identifier: Apache-2.0

//go:build linux

package control

import (
	"context"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/udsvisor/udsvisor/api"
	"github.com/udsvisor/udsvisor/config"
	"github.com/udsvisor/udsvisor/internal/peercred"
	"github.com/udsvisor/udsvisor/supervisor"
)

// route is one endpoint. The table is fixed: no handler dispatches on a
// caller's string, execs it or opens a path it names (supervisord's
// CVE-2017-11610 walked object names from the request).
type route struct {
	method, pattern string
	access          access
	handle          func(s *Server, w http.ResponseWriter, r *http.Request) error
}

// routes is the whole API.
var routes = []route{
	{"GET", "/v1/services", accessRead, (*Server).list},
	{"GET", "/v1/services/{name}", accessRead, (*Server).get},
	{"POST", "/v1/services/{name}/start", accessWrite, action(Backend.Start)},
	{"POST", "/v1/services/{name}/stop", accessWrite, action(Backend.Stop)},
	{"POST", "/v1/services/{name}/restart", accessWrite, action(Backend.Restart)},
	{"POST", "/v1/services/{name}/pause", accessWrite, action(Backend.Pause)},
	{"POST", "/v1/services/{name}/resume", accessWrite, action(Backend.Resume)},
	{"POST", "/v1/services/{name}/signal", accessWrite, (*Server).signal},
	{"POST", "/v1/services/{name}/scale", accessWrite, (*Server).scale},
	{"GET", "/v1/services/{name}/logs", accessRead, (*Server).logs},
	{"POST", "/v1/reload", accessWrite, (*Server).reload},
	{"GET", "/v1/upgrade", accessRead, (*Server).upgradeStatus},
	{"POST", "/v1/upgrade", accessWrite, (*Server).upgrade},
	{"GET", "/metrics", accessRead, (*Server).metrics},
}

// dispatch keeps answers from waiting for an unread body (guardBody),
// refuses callers who may not even read, then answers unknown paths and
// methods in JSON, and hands the rest to the mux.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	w, r = guardBody(w, r)
	p, ok := peerFrom(r.Context())
	if !ok {
		w.Header().Set("Connection", "close")
		writeJSON(w, http.StatusForbidden, api.Error{Error: "permission denied: no peer credentials"})
		return
	}
	if !s.may(p, accessRead) {
		s.deny(w, r, p, accessRead)
		return
	}
	// The API has no redirects: a path the mux would clean (a "..", a
	// trailing or double slash) is simply not an endpoint.
	if ep := r.URL.EscapedPath(); !strings.HasPrefix(ep, "/") || path.Clean(ep) != ep {
		writeJSON(w, http.StatusNotFound, api.Error{Error: fmt.Sprintf("no such endpoint: %s %s", r.Method, ep)})
		return
	}
	if h, pattern := s.mux.Handler(r); pattern == "" {
		rec := &headerRecorder{h: make(http.Header)}
		h.ServeHTTP(rec, r)
		if rec.status == http.StatusMethodNotAllowed {
			allow := rec.h.Get("Allow")
			w.Header().Set("Allow", allow)
			writeJSON(w, http.StatusMethodNotAllowed, api.Error{
				Error: fmt.Sprintf("method %s not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow)})
			return
		}
		writeJSON(w, http.StatusNotFound, api.Error{Error: fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path)})
		return
	}
	s.mux.ServeHTTP(w, r)
}

// guard wraps rt's handler with its access check and, for a write, the
// audit log line naming the caller.
func (s *Server) guard(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := peerFrom(r.Context()) // dispatch checked it is there
		if !s.may(p, rt.access) {
			s.deny(w, r, p, rt.access)
			return
		}
		if rt.access == accessWrite {
			sw := &statusWriter{ResponseWriter: w}
			w = sw
			start := time.Now()
			defer func() {
				s.log.Info("control request", zap.String("method", r.Method), zap.String("path", r.URL.Path),
					zap.Uint32("uid", p.UID), zap.Int32("pid", p.PID), zap.Int("status", sw.status),
					zap.Duration("duration", time.Since(start)))
			}()
		}
		if err := rt.handle(s, w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// deny refuses the request and closes the connection after the answer,
// so that a refused caller cannot keep its slot as an idle keep-alive
// connection (T28).
func (s *Server) deny(w http.ResponseWriter, r *http.Request, p peercred.Creds, a access) {
	w.Header().Set("Connection", "close")
	s.log.Warn("control request denied", zap.String("method", r.Method), zap.String("path", r.URL.Path),
		zap.Uint32("uid", p.UID), zap.Uint32("gid", p.GID), zap.Int32("pid", p.PID))
	writeJSON(w, http.StatusForbidden, api.Error{Error: s.denial(p, a, r.Method, r.URL.Path)})
}

// serviceName returns the {name} of r once it is a valid service name. An
// invalid one (such as "../x" from "..%2Fx") cannot name a service, so it
// is a 404 without asking the backend.
func serviceName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	if !config.ValidServiceName(name) {
		return "", fmt.Errorf("%w %q (names are %s)", supervisor.ErrUnknownService, name, config.ServiceNameForm)
	}
	return name, nil
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) error {
	svcs, err := s.b.List(r.Context())
	if err != nil {
		return err
	}
	if strings.HasPrefix(r.Header.Get("Accept"), "text/plain") {
		w.Header().Set("Content-Type", api.TableType)
		return api.WriteTable(w, apiServices(svcs, false))
	}
	writeJSON(w, http.StatusOK, apiServices(svcs, true)) // [] rather than null on the wire
	return nil
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) error {
	name, err := serviceName(r)
	if err != nil {
		return err
	}
	return s.answerService(r.Context(), w, name)
}

// answerService answers with the service's state, after an action too.
func (s *Server) answerService(ctx context.Context, w http.ResponseWriter, name string) error {
	st, err := s.b.Status(ctx, name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, apiService(st, time.Now()))
	return nil
}

// action returns the handler of a POST that takes no arguments: its body
// must be empty or {}.
func action(do func(Backend, context.Context, string) error) func(*Server, http.ResponseWriter, *http.Request) error {
	return func(s *Server, w http.ResponseWriter, r *http.Request) error {
		name, err := serviceName(r)
		if err != nil {
			return err
		}
		if err := decodeBody(w, r, &struct{}{}, true); err != nil {
			return err
		}
		if err := do(s.b, r.Context(), name); err != nil {
			return err
		}
		return s.answerService(r.Context(), w, name)
	}
}

func (s *Server) signal(w http.ResponseWriter, r *http.Request) error {
	name, err := serviceName(r)
	if err != nil {
		return err
	}
	var req api.SignalRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		return err
	}
	sig, err := config.ParseSignal(req.Signal)
	if err != nil {
		return badRequest("%v", err)
	}
	if err := s.b.Signal(r.Context(), name, sig); err != nil {
		return err
	}
	return s.answerService(r.Context(), w, name)
}

func (s *Server) scale(w http.ResponseWriter, r *http.Request) error {
	name, err := serviceName(r)
	if err != nil {
		return err
	}
	var req api.ScaleRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		return err
	}
	if err := s.b.Scale(r.Context(), name, req.Instances); err != nil {
		return err
	}
	return s.answerService(r.Context(), w, name)
}

func (s *Server) reload(w http.ResponseWriter, r *http.Request) error {
	if err := decodeBody(w, r, &struct{}{}, true); err != nil {
		return err
	}
	res, err := s.b.Reload(r.Context())
	if err != nil {
		return err
	}
	out := api.ReloadResult(res)
	for _, l := range []*[]string{&out.Added, &out.Removed, &out.Changed, &out.Unchanged, &out.Failed} {
		if *l == nil {
			*l = []string{} // [] rather than null on the wire
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) upgradeStatus(w http.ResponseWriter, r *http.Request) error {
	if s.opts.Upgrader == nil {
		return errNoUpgrader
	}
	writeJSON(w, http.StatusOK, s.opts.Upgrader.UpgradeStatus())
	return nil
}

func (s *Server) upgrade(w http.ResponseWriter, r *http.Request) error {
	if err := decodeBody(w, r, &struct{}{}, true); err != nil {
		return err
	}
	if s.opts.Upgrader == nil {
		return errNoUpgrader
	}
	before, err := s.opts.Upgrader.Upgrade(r.Context())
	if err != nil {
		return err
	}
	// The answer goes out before the upgrade stops the control API.
	w.Header().Set("Connection", "close")
	writeJSON(w, http.StatusAccepted, before)
	return nil
}

// errNoUpgrader answers an upgrade request to a server without one.
var errNoUpgrader = &reqError{status: http.StatusNotImplemented, msg: "this udsvisor cannot be upgraded in place"}
