// SPDX-License-Identifier: Apache-2.0

//go:build linux

// Package proxypath measures the path udsvisor exists for: nginx in front
// of one HTTP backend (bench/backend), over the backend's udsvisor-owned
// Unix socket versus over TCP 127.0.0.1, and over a udsvisor relay in
// front of the backend bound to TCP in a private network namespace, each
// with and without upstream keepalive, driven by wrk.
//
// Every transport reaches the same binary with the same handler, running
// as nobody with an environment built from scratch: one started by
// `udsvisor up` on the Unix socket udsvisor binds (fd 3), one started
// directly with `-bind 127.0.0.1:PORT`, and one started by the same
// udsvisor as a relay service ([services.NAME.relay]): `udsvisor __relay`
// accepts on the service's own Unix socket and splices each connection
// to the backend's `-bind 127.0.0.1:PORT` in the service's network
// namespace. Only the transport between nginx and the backend differs.
package proxypath

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/udsvisor/udsvisor/bench/internal/proc"
	"github.com/udsvisor/udsvisor/bench/internal/report"
)

// transport is how nginx reaches a backend.
type transport int

// The transports, in the order of part.cases within a keepalive mode.
const (
	unixSocket  transport = iota // the udsvisor-owned Unix socket, the backend on fd 3
	tcpLoopback                  // TCP 127.0.0.1, the backend binding it itself
	relayed                      // a udsvisor-owned Unix socket, relayed to the backend's TCP port in its own network namespace
	numTransports
)

func (t transport) String() string {
	switch t {
	case unixSocket:
		return "Unix socket"
	case tcpLoopback:
		return "TCP 127.0.0.1"
	case relayed:
		return "Unix socket → relay → TCP (private netns)"
	}
	return fmt.Sprintf("transport(%d)", int(t))
}

// pathCase is one way from nginx to the backend.
type pathCase struct {
	transport transport
	keepalive bool // an upstream pool of keepaliveConns, else a connection per request
	port      int  // nginx's listening port for this case
}

// caseIndex is the index in part.cases of the case with t and keepalive:
// the transports without keepalive, then with.
func caseIndex(t transport, keepalive bool) int {
	if keepalive {
		return int(numTransports) + int(t)
	}
	return int(t)
}

func (c pathCase) mode() string {
	if c.keepalive {
		return fmt.Sprintf("keepalive %d", keepaliveConns)
	}
	return "no keepalive"
}

func (c pathCase) String() string { return c.transport.String() + ", " + c.mode() }

// part is one run of this part: its scratch directory and the processes
// it started.
type part struct {
	env     *report.Env
	dir     string // env.Dir/proxypath, removed on return
	sock    string // the backend's Unix socket, bound by udsvisor
	tcpAddr string // the TCP backend's address
	// relaySock is the relay service's Unix socket, bound by udsvisor;
	// relayPort the backend's port behind it, in its network namespace.
	relaySock string
	relayPort int
	cases     []*pathCase // indexed by caseIndex

	udsvisor, tcpBackend, nginx *proc.Child
	// The three backends' pids, from their answers.
	unixPID, tcpPID, relayPID int
}

// Run measures nginx → backend over the Unix socket, over TCP and over the
// relay, with and without upstream keepalive, and returns the figures. Without nginx or
// wrk it returns no figures (bench has said what is missing). Every
// process it starts is stopped, and its directory removed, on every
// return.
func Run(ctx context.Context, env *report.Env) (figs []report.Figure, err error) {
	for _, prog := range []string{"nginx", "wrk"} {
		if _, err := exec.LookPath(prog); err != nil {
			env.Logf("proxypath: %s not found; left out", prog)
			return nil, nil
		}
	}
	pl := planFor(env.Quick)
	ctx, cancel := context.WithTimeoutCause(ctx, pl.budget,
		fmt.Errorf("the proxy path ran past its budget of %v", pl.budget))
	defer cancel()

	p := &part{env: env, dir: filepath.Join(env.Dir, "proxypath")}
	if err := os.Mkdir(p.dir, 0o755); err != nil {
		return nil, fmt.Errorf("scratch directory: %w", err)
	}
	// Deferred first, run last: the processes stop before the directory
	// holding their sockets and logs is removed.
	defer func() {
		if rmErr := os.RemoveAll(p.dir); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("remove %s: %w", p.dir, rmErr))
		}
	}()
	defer func() {
		if stopErr := p.stopAll(); stopErr != nil {
			err = errors.Join(err, fmt.Errorf("cleanup: %w", stopErr))
		}
	}()
	// The directory must be searchable by nginx's workers (www-data) on
	// the way to the socket, and stay root's: udsvisor refuses a socket
	// directory others can write to. Mkdir's mode went through the umask.
	if err := os.Chmod(p.dir, 0o755); err != nil {
		return nil, fmt.Errorf("scratch directory: %w", err)
	}

	start := time.Now()
	if err := p.setup(ctx); err != nil {
		return nil, fmt.Errorf("set-up: %w", err)
	}
	env.Logf("proxypath: set up in %v; measuring %d round(s) of %d cases, %v each",
		time.Since(start).Round(time.Millisecond), pl.rounds, len(p.cases), pl.dur)
	results, err := p.measure(ctx, pl)
	if err != nil {
		return nil, err
	}
	// The same checks once more: a backend that crashed and was restarted
	// by udsvisor during the rounds would answer with another pid.
	if err := p.verifyPorts(ctx, 10); err != nil {
		return nil, fmt.Errorf("after the rounds: %w", err)
	}
	if failed := p.errorSummary(results); failed != "" {
		env.Logf("proxypath: failed requests: %s", failed)
	}
	return p.figures(results), nil
}

// setup starts the backend and the relayed one under udsvisor, the TCP
// backend and nginx, and checks that each of nginx's ports answers with
// the right backend.
func (p *part) setup(ctx context.Context) error {
	nobody, err := lookupIDs("nobody")
	if err != nil {
		return err
	}
	// nginx's workers reach the socket through its group, as in the
	// README's setup; the group must exist for udsvisor to chown to it.
	if _, err := user.LookupGroup("www-data"); err != nil {
		return fmt.Errorf("nginx's worker group: %w", err)
	}
	// One nginx port per case, then the TCP backend's and the relayed
	// backend's. The latter is bound in the relay service's own network
	// namespace and could be any port; one free here too means that
	// nothing on the host could answer in its place.
	n := 2 * int(numTransports)
	ports, err := freePorts(n + 2)
	if err != nil {
		return err
	}
	p.sock = filepath.Join(p.dir, "sock", "backend.sock")
	p.tcpAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[n]))
	p.relaySock = filepath.Join(p.dir, "relay-sock", "relayed.sock")
	p.relayPort = ports[n+1]
	p.cases = make([]*pathCase, n)
	for _, keepalive := range []bool{false, true} {
		for t := range numTransports {
			i := caseIndex(t, keepalive)
			p.cases[i] = &pathCase{transport: t, keepalive: keepalive, port: ports[i]}
		}
	}

	if err := p.startUdsvisor(ctx); err != nil {
		return err
	}
	if err := p.startTCPBackend(ctx, nobody); err != nil {
		return err
	}
	if p.unixPID == p.tcpPID || p.relayPID == p.unixPID || p.relayPID == p.tcpPID {
		return fmt.Errorf("two backends answer as the same pid: Unix %d, TCP %d, relayed %d",
			p.unixPID, p.tcpPID, p.relayPID)
	}
	if err := p.startNginx(ctx); err != nil {
		return err
	}
	return p.verifyPorts(ctx, warmup)
}

// alive checks that none of the long-running processes has ended.
func (p *part) alive() error {
	for _, q := range []*proc.Child{p.udsvisor, p.tcpBackend, p.nginx} {
		if err := q.Exited(); err != nil {
			return err
		}
	}
	return nil
}

// stopAll stops nginx first (no more requests to the backends), then the
// TCP backend, then udsvisor, which stops its two services and removes
// their sockets. Each gets SIGTERM, then SIGKILL to its whole process group.
func (p *part) stopAll() error {
	var errs []error
	if p.nginx != nil {
		errs = append(errs, p.nginx.Stop(syscall.SIGTERM, 5*time.Second))
	}
	if p.tcpBackend != nil {
		errs = append(errs, p.tcpBackend.Stop(syscall.SIGTERM, 5*time.Second))
	}
	if p.udsvisor != nil {
		// Within the backend's stop_timeout of 2s, and then some.
		errs = append(errs, p.udsvisor.Stop(syscall.SIGTERM, 10*time.Second))
	}
	return errors.Join(errs...)
}

// freePorts returns n distinct loopback TCP ports that nothing listens on
// now. They are held open together so that they differ, then released
// for nginx and the TCP backend to bind; another process taking one in
// between is possible but only makes the start fail with EADDRINUSE.
func freePorts(n int) ([]int, error) {
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("a free loopback port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
