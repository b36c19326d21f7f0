// SPDX-License-Identifier: Apache-2.0

// Package relay carries the connections accepted on a service's sockets to
// an app that can only listen on TCP at 127.0.0.1:PORT.
//
// udsvisor owns every service's listening sockets and hands them over at
// fd 3 and up, but some apps cannot take a socket: they insist on binding
// a TCP port themselves. For those, [services.X.relay] runs the app in a
// private network namespace (only lo is up, so its port is invisible and
// cannot collide) next to `udsvisor __relay`, which holds the service's
// sockets and passes each accepted connection on to the app's port. The
// sockets stay the supervisor's: connections that arrive while no relay
// accepts wait in the kernel backlog, as they do for any service.
//
// A connection is accepted, then the target is dialled, retrying while it
// refuses (the app is still starting); then an optional PROXY protocol
// header goes first, so the app can learn the real client; then bytes are
// copied both ways with half-close until both directions reach EOF.
package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/udsvisor/udsvisor/config"
)

// Options says where and how Serve relays.
type Options struct {
	// Port is the app's TCP port on 127.0.0.1, 1 to 65535.
	Port int
	// Proxy is the PROXY protocol header sent to the app first on each
	// connection, if any.
	Proxy config.ProxyProtocol
	// ConnectTimeout bounds how long an accepted client's dial is retried
	// while the app refuses, and spaces the warnings while Serve waits for
	// the app to listen at all; it must be positive.
	ConnectTimeout time.Duration
}

// retryEvery is how often a refused dial is tried again: an app that is
// starting usually listens within tens of milliseconds, and a refused
// connect on loopback costs next to nothing.
const retryEvery = 25 * time.Millisecond

// Serve accepts on every listener in lns and relays each connection to
// 127.0.0.1:opts.Port until ctx is done or a listener fails.
//
// When ctx is done, Serve stops accepting at once by closing lns, which
// are this process's copies of the supervisor's sockets: the sockets stay
// bound and listening, and new connections wait in their backlog for the
// next process. (Serve never shuts a listener down, which would break the
// socket for every holder, and it turns off SetUnlinkOnClose on Unix
// listeners, whose path is the supervisor's.) Serve then returns once
// every accepted connection is done: a relay ends when both directions
// reached EOF or one of them failed, and a client still waiting for the
// app is closed after at most opts.ConnectTimeout.
//
// Serve returns nil after ctx is done, or the error of the first listener
// that failed, after closing the others and waiting likewise.
func Serve(ctx context.Context, lns []net.Listener, opts Options, log *zap.Logger) error {
	if opts.Port < 1 || opts.Port > 65535 {
		return fmt.Errorf("relay: port %d is out of range 1-65535", opts.Port)
	}
	if opts.ConnectTimeout <= 0 {
		return fmt.Errorf("relay: connect timeout %v is not positive", opts.ConnectTimeout)
	}
	if len(lns) == 0 {
		return errors.New("relay: no listeners")
	}
	for _, ln := range lns {
		if ul, ok := ln.(*net.UnixListener); ok {
			ul.SetUnlinkOnClose(false)
		}
	}
	s := &server{
		opts:   opts,
		target: net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.Port)),
		log:    log,
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	// Closing is the one way to interrupt a blocked Accept.
	context.AfterFunc(ctx, func() {
		for _, ln := range lns {
			ln.Close()
		}
	})
	if !s.awaitApp(ctx) {
		return nil // done before the app listened; lns are closed
	}
	var wg sync.WaitGroup // the accept loops and the relays they started
	errs := make([]error, len(lns))
	for i, ln := range lns {
		wg.Go(func() {
			if errs[i] = s.accept(ctx, ln, &wg); errs[i] != nil {
				stop()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// server is what the goroutines of one Serve share; only the limiters
// change, under their own locks.
type server struct {
	opts   Options
	target string // 127.0.0.1:Port
	log    *zap.Logger

	dialWarn   limiter // the app refused or was unreachable
	acceptWarn limiter // accept ran out of fds or memory
}

// awaitApp returns once the app accepts a connection on its port (true)
// or ctx is done (false). Nothing is accepted before: clients wait in the
// sockets' backlog, as for any service that is starting, and udsvisor's
// rule that a process which accepted a connection has started then means
// that the app answers, which an overlapping restart and the crash
// back-off rely on. The app sees one connection that closes unused.
func (s *server) awaitApp(ctx context.Context) bool {
	var d net.Dialer
	start := time.Now()
	warnAt := start.Add(s.opts.ConnectTimeout)
	for {
		c, err := d.DialContext(ctx, "tcp4", s.target)
		if err == nil {
			c.Close()
			return true
		}
		if now := time.Now(); now.After(warnAt) {
			s.log.Warn("relay: the app does not listen yet; connections wait in the backlog",
				zap.String("target", s.target), zap.Duration("waited", time.Since(start).Round(time.Millisecond)), zap.Error(err))
			warnAt = now.Add(s.opts.ConnectTimeout)
		}
		if !sleep(ctx, retryEvery) {
			return false
		}
	}
}

// sleep waits for d and reports true, or false as soon as ctx is done.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// accept relays each connection accepted on ln, each in a goroutine
// counted by wg, until ctx is done (nil) or ln fails (the error).
func (s *server) accept(ctx context.Context, ln net.Listener, wg *sync.WaitGroup) error {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !outOfResources(err) {
				return err // net.OpError: "accept unix /run/x.sock: …"
			}
			// The connection stays queued; retrying at once would spin
			// until an fd is free, as net/http's Serve knows too.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			if n, ok := s.acceptWarn.allow(); ok {
				s.log.Warn("relay: accept failed; retrying", zap.Error(err), zap.Duration("backoff", backoff), zap.Int("suppressed", n))
			}
			if !sleep(ctx, backoff) {
				return nil
			}
			continue
		}
		backoff = 0
		wg.Go(func() { s.relay(ctx, c) })
	}
}

// outOfResources reports whether an accept error is the process's or the
// system's limit rather than the listener's: it passes when connections
// close.
func outOfResources(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// relay carries client to the target and closes both.
func (s *server) relay(ctx context.Context, client net.Conn) {
	defer client.Close()
	// A client accepted before ctx was done is served all the same: it
	// left the backlog, so no later process would get it.
	target, err := s.dial(context.WithoutCancel(ctx))
	if err != nil {
		if n, ok := s.dialWarn.allow(); ok {
			s.log.Warn("relay: no connection to the app; client closed",
				zap.String("target", s.target), zap.Stringer("client", addr{client.RemoteAddr()}),
				zap.Error(err), zap.Int("suppressed", n))
		}
		return
	}
	defer target.Close()
	if s.opts.Proxy != "" {
		if _, err := target.Write(header(s.opts.Proxy, client)); err != nil {
			s.log.Debug("relay: PROXY header not sent", zap.Error(err))
			return
		}
	}
	if err := pipe(client, target); err != nil {
		s.log.Debug("relay: connection cut", zap.Stringer("client", addr{client.RemoteAddr()}), zap.Error(err))
	}
}

// dial connects to the target, trying again every retryEvery while it
// refuses, for up to ConnectTimeout. Other errors end it at once: in the
// app's namespace only a missing listener is expected to pass.
func (s *server) dial(ctx context.Context) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.ConnectTimeout)
	defer cancel()
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp4", s.target)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, err
		}
		if !sleep(ctx, retryEvery) {
			return nil, fmt.Errorf("%w (for %v)", err, s.opts.ConnectTimeout)
		}
	}
}

// addr prints a possibly nil net.Addr; an unnamed Unix peer prints as "".
type addr struct{ net.Addr }

func (a addr) String() string {
	if a.Addr == nil {
		return ""
	}
	return a.Addr.String()
}

// warnEvery spaces out the warnings of one kind. While the app is down,
// every arriving client fails the same way; a line a second that counts
// the others says as much as a line per client, and does not flood the
// service's log.
const warnEvery = time.Second

// limiter lets one warning through per warnEvery and counts the rest.
type limiter struct {
	mu         sync.Mutex
	next       time.Time // when the next warning may go
	suppressed int       // since the last warning that went
}

// allow reports whether a warning may be logged now and, if so, how many
// were suppressed since the last one.
func (l *limiter) allow() (suppressed int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if now.Before(l.next) {
		l.suppressed++
		return 0, false
	}
	n := l.suppressed
	l.next, l.suppressed = now.Add(warnEvery), 0
	return n, true
}
