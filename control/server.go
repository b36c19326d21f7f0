// SPDX-License-Identifier: Apache-2.0

//go:build linux

// Package control serves udsvisor's control API: HTTP/1.1 with JSON
// bodies on a Unix socket (never TCP), authorised by the kernel's peer
// credentials.
//
// The socket is bound by the caller with sockets.Bind (root:control_group,
// control_mode) and handed to Serve as a net.Listener (net.FileListener of
// the sockets.Listener's File). The file mode is only the first gate: at
// Accept, the server reads the client's uid, gid and pid (SO_PEERCRED) and
// its supplementary groups (SO_PEERGROUPS) from the kernel and attaches
// them to the request context through http.Server.ConnContext. Root and
// members of control_group may do everything; members of status_group may
// only read (GET); everyone else gets 403, even if the socket's mode was
// loosened by mistake. Every mutating request is logged with the caller's
// uid and pid.
//
// Routes (the table is in routes.go; every name must match
// [A-Za-z0-9_.@-]{1,64} before any lookup):
//
//	GET  /v1/services                      []api.Service
//	GET  /v1/services/{name}               api.Service
//	POST /v1/services/{name}/start         api.Service after the action
//	POST /v1/services/{name}/stop          api.Service after the action
//	POST /v1/services/{name}/restart       api.Service after the action
//	POST /v1/services/{name}/pause         api.Service after the action
//	POST /v1/services/{name}/resume        api.Service after the action
//	POST /v1/services/{name}/signal        {"signal":"HUP"} → api.Service
//	POST /v1/services/{name}/scale         {"instances":3} → api.Service
//	GET  /v1/services/{name}/logs?lines=N&follow=1   api.LogLine per line (NDJSON)
//	POST /v1/reload                        api.ReloadResult
//	GET  /v1/upgrade                       api.Upgrade
//	POST /v1/upgrade                       api.Upgrade before; 202, then udsvisor re-executes
//	GET  /metrics                          Prometheus text format
//
// Errors are api.Error bodies: 400 for a malformed request (bad JSON,
// unknown fields, trailing data, a body over 64 KiB, an unknown signal),
// 403, 404 (unknown path or service), 405, 408 (a body that did not
// arrive within the read timeout), then the Backend's errors as
// backend.go maps them (409, 422, 503, 500).
//
// Against slow or numerous clients (SECURITY-NOTES T16-T18, T28) the
// server bounds the time it takes to read the headers and the whole
// request, idle time and header size; an answer given without reading
// the body (a refusal, a malformed body) closes the connection instead
// of waiting for the rest (body.go), and so does every refusal. It
// accepts at most MaxConns connections at once on the control socket;
// further clients wait in the kernel's backlog. One uid other than root
// holds at most MaxConnsPerUID of them: its further connections are
// closed as soon as they are accepted. Several users together can still
// fill the slots and the backlog, so root has a socket of its own: Serve
// also serves the root-only socket (BindRoot, client.RootSocket), whose
// slots and backlog no other user can reach. Follow streams end when the
// server shuts down.
package control

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/udsvisor/udsvisor/api"
	"github.com/udsvisor/udsvisor/internal/peercred"
)

// DefaultMaxConns is the connection cap when Options.MaxConns is 0.
const DefaultMaxConns = 256

// DefaultMaxConnsPerUID is the per-uid cap when Options.MaxConnsPerUID is
// 0: far more than ctl needs, far fewer than DefaultMaxConns.
const DefaultMaxConnsPerUID = 32

// DefaultMaxRootConns is the connection cap of the root-only socket when
// Options.MaxRootConns is 0.
const DefaultMaxRootConns = 32

// Options configure a Server.
type Options struct {
	// ControlGID is the group whose members may do everything; -1: root
	// only.
	ControlGID int
	// StatusGID is the group whose members may read; -1: none.
	StatusGID int
	// Log receives one event per mutating request and per refusal; nil
	// discards.
	Log *zap.Logger
	// MaxConns caps concurrent connections (0: DefaultMaxConns).
	MaxConns int
	// MaxConnsPerUID caps the concurrent connections of each uid but
	// root (0: DefaultMaxConnsPerUID).
	MaxConnsPerUID int
	// MaxRootConns caps the concurrent connections on the root-only
	// socket, apart from MaxConns (0: DefaultMaxRootConns).
	MaxRootConns int
	// Version is udsvisor's, for the udsvisor_build_info metric.
	Version string
	// Upgrader serves /v1/upgrade; nil answers 501.
	Upgrader Upgrader
}

// Upgrader re-executes udsvisor in place (cmd/udsvisor).
type Upgrader interface {
	// Upgrade checks the binary on disk and, if it can take over,
	// begins the upgrade, which waits for this request to be answered.
	// It returns the state before. A binary that cannot take over is an
	// error wrapping ErrUpgradeRefused (409); an upgrade already under
	// way wraps supervisor.ErrUpgrading (503).
	Upgrade(ctx context.Context) (api.Upgrade, error)
	// UpgradeStatus is the running udsvisor's version, pid and upgrades.
	UpgradeStatus() api.Upgrade
}

// ErrUpgradeRefused: the new binary cannot take over; nothing changed.
var ErrUpgradeRefused = errors.New("upgrade refused")

// Server serves the control API on an already-listening socket.
type Server struct {
	b       Backend
	opts    Options
	log     *zap.Logger
	handler http.Handler
	mux     *http.ServeMux
	// groups are who may control and who may read: opts' at first,
	// replaced as a whole by SetGroups on a reload, read per request.
	groups atomic.Pointer[groups]

	// Tests shorten or force these; New sets the production values.
	readHeaderTimeout time.Duration
	// readTimeout bounds the reading of a whole request, body included
	// (body.go).
	readTimeout time.Duration
	idleTimeout time.Duration
	// shutdownTimeout bounds how long Serve waits for requests in flight
	// (a stop waits for the service's stop_timeout) before closing them.
	shutdownTimeout time.Duration
	// noPeerGroups forces the /proc/PID/status fallback for kernels
	// without SO_PEERGROUPS.
	noPeerGroups bool

	// public is the control socket's listener while Serve runs, for tests
	// that check a flood holds every slot.
	public atomic.Pointer[limitListener]
}

// groups are the control and status groups; -1 for none.
type groups struct{ control, status int }

// SetGroups replaces the control and status groups (-1 for none), for a
// reload: every request from now on is authorised by the new ones, on
// connections already open too (T27).
func (s *Server) SetGroups(controlGID, statusGID int) {
	s.groups.Store(&groups{control: controlGID, status: statusGID})
}

// New returns a Server driving b.
func New(b Backend, opts Options) *Server {
	if opts.MaxConns <= 0 {
		opts.MaxConns = DefaultMaxConns
	}
	if opts.MaxConnsPerUID <= 0 {
		opts.MaxConnsPerUID = DefaultMaxConnsPerUID
	}
	if opts.MaxRootConns <= 0 {
		opts.MaxRootConns = DefaultMaxRootConns
	}
	log := opts.Log
	if log == nil {
		log = zap.NewNop()
	}
	s := &Server{
		b:                 b,
		opts:              opts,
		log:               log,
		readHeaderTimeout: 5 * time.Second,
		readTimeout:       10 * time.Second,
		idleTimeout:       60 * time.Second,
		shutdownTimeout:   30 * time.Second,
	}
	s.groups.Store(&groups{control: opts.ControlGID, status: opts.StatusGID})
	s.mux = http.NewServeMux()
	for _, rt := range routes {
		s.mux.Handle(rt.method+" "+rt.pattern, s.guard(rt))
	}
	s.handler = http.HandlerFunc(s.dispatch)
	return s
}

// Handler returns the API as an http.Handler. Requests must carry their
// credentials in their context (withPeer); a request without them
// is refused.
func (s *Server) Handler() http.Handler { return s.handler }

type streamsKey struct{}

// Serve serves the control socket l and, if not nil, the root-only
// socket root (BindRoot) until ctx is done, then shuts down gracefully:
// it stops accepting, ends follow streams, waits for the other requests
// in flight and returns nil. It closes both listeners. Both must be Unix
// socket listeners, since every connection is authorised by its peer
// credentials; on root, a connection from any uid but 0 is closed at
// once. If one listener fails, Serve shuts down and returns its error.
func (s *Server) Serve(ctx context.Context, l, root net.Listener) error {
	// streams is cancelled at shutdown so that follow streams, which never
	// end by themselves, let Shutdown finish; other requests keep their
	// context and complete.
	streams, endStreams := context.WithCancel(context.Background())
	defer endStreams()
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.readHeaderTimeout,
		// The body must be in by then too (T28). net/http lifts the
		// deadline once the request has been read (before the handler
		// for a request without a body, when the handler reads the body
		// to its end otherwise), so it never cuts a stop waiting for
		// stop_timeout or a follow stream.
		ReadTimeout:    s.readTimeout,
		IdleTimeout:    s.idleTimeout,
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       zap.NewStdLog(s.log.Named("http")),
		BaseContext: func(net.Listener) context.Context {
			return context.WithValue(context.Background(), streamsKey{}, streams)
		},
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if pc, ok := c.(*peerConn); ok {
				return withPeer(ctx, pc.peer)
			}
			return ctx // no credentials: every request is refused
		},
	}
	srv.RegisterOnShutdown(endStreams)
	lls := []*limitListener{s.limit(l, s.opts.MaxConns, false)}
	s.public.Store(lls[0])
	defer s.public.Store(nil)
	if root != nil {
		lls = append(lls, s.limit(root, s.opts.MaxRootConns, true))
	}
	// One send per listener; the goroutines may outlive a select that
	// moved on.
	served := make(chan error, len(lls))
	for _, ll := range lls {
		go func() { served <- srv.Serve(ll) }()
	}
	pending := len(lls)
	var failed error
	select {
	case failed = <-served:
		pending--
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		s.log.Warn("control: requests still running at shutdown; closing them", zap.Error(err))
		srv.Close()
	}
	for ; pending > 0; pending-- {
		if err := <-served; failed == nil && !errors.Is(err, http.ErrServerClosed) {
			failed = err
		}
	}
	if errors.Is(failed, http.ErrServerClosed) {
		return nil
	}
	return failed
}

// limit wraps l with a cap of n connections; rootOnly closes every
// connection whose peer is not uid 0.
func (s *Server) limit(l net.Listener, n int, rootOnly bool) *limitListener {
	return &limitListener{
		Listener:     l,
		sem:          make(chan struct{}, n),
		done:         make(chan struct{}),
		perUID:       make(map[uint32]int),
		maxPerUID:    s.opts.MaxConnsPerUID,
		rootOnly:     rootOnly,
		log:          s.log,
		noPeerGroups: s.noPeerGroups,
	}
}

// limitListener accepts at most cap(sem) connections at a time and reads
// each one's peer credentials at Accept. A client beyond the cap waits in
// the kernel backlog until a connection closes. A connection that would
// give its uid (root's excepted) more than maxPerUID is closed at once,
// and so is every connection but root's when rootOnly is set.
type limitListener struct {
	net.Listener
	sem          chan struct{} // one token per open connection
	done         chan struct{} // closed by Close, to unblock an Accept waiting for a token
	closeOnce    sync.Once
	log          *zap.Logger
	noPeerGroups bool
	// rootOnly marks the root-only socket: its file mode already keeps
	// others out, and the peer check holds even if the mode is loosened.
	rootOnly bool

	maxPerUID int
	mu        sync.Mutex
	perUID    map[uint32]int // guarded by mu; open connections per uid but 0
}

// Accept waits for a free slot, then for a connection whose credentials
// it can read. A connection whose credentials cannot be read is closed and
// skipped rather than returned as an error, which would stop the server.
func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.sem
			// http.Server backs off and retries on a temporary error
			// (EMFILE), and stops on any other.
			return nil, err
		}
		p, err := peercred.Read(c, peercred.Options{NoPeerGroups: l.noPeerGroups})
		if err != nil {
			l.log.Warn("control: refusing connection", zap.Error(err))
			c.Close()
			continue
		}
		if l.rootOnly && p.UID != 0 {
			l.log.Warn("control: refusing a connection to the root-only socket from another uid",
				zap.Uint32("uid", p.UID), zap.Int32("pid", p.PID))
			c.Close()
			continue
		}
		if !l.take(p.UID) {
			// Debug only: a flood must not turn into a log flood.
			l.log.Debug("control: too many connections from one uid; closing", zap.Uint32("uid", p.UID), zap.Int32("pid", p.PID))
			c.Close()
			continue
		}
		return &peerConn{Conn: c, peer: p, release: func() { l.give(p.UID); <-l.sem }}, nil
	}
}

// take counts a new connection of uid and reports whether it is within
// the per-uid cap. Root is never capped: it must always get in.
func (l *limitListener) take(uid uint32) bool {
	if uid == 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perUID[uid] >= l.maxPerUID {
		return false
	}
	l.perUID[uid]++
	return true
}

// give uncounts a closed connection of uid.
func (l *limitListener) give(uid uint32) {
	if uid == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perUID[uid]--; l.perUID[uid] <= 0 {
		delete(l.perUID, uid)
	}
}

// Close stops accepting and closes the listener.
func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// peerConn is an accepted connection with the credentials read at Accept.
type peerConn struct {
	net.Conn
	peer    peercred.Creds
	release func()
	once    sync.Once
}

// CloseWrite half-closes the connection, which http.Server does before
// closing it after a response (the wrapper would hide the method).
func (c *peerConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Close closes the connection and frees its slot, once.
func (c *peerConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
