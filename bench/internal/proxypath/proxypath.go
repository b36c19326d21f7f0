// Package proxypath measures the path udsvisor exists for: nginx in front
// of one HTTP backend (bench/backend), over the backend's udsvisor-owned
// Unix socket versus over TCP 127.0.0.1, each with and without upstream
// keepalive, driven by wrk.
//
// Both transports reach the same binary with the same handler, running as
// nobody with an environment built from scratch: one started by `udsvisor
// up` on the Unix socket udsvisor binds (fd 3), one started directly with
// `-bind 127.0.0.1:PORT`. Only the transport between nginx and the
// backend differs.
package proxypath

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/udsvisor/udsvisor/bench/internal/report"
)

// The load: wrk's threads and connections. Two threads match the
// machine's two vCPUs, which wrk, nginx and the backend share; 50
// connections keep every process busy without queueing in the backlog.
const (
	wrkThreads     = 2
	wrkConnections = 50
	// keepaliveConns is the size of nginx's cache of idle upstream
	// connections (per worker), as specified for this figure. It
	// caps idle connections, not open ones: with 50 requests in flight
	// nginx opens more and closes those that find the cache full, so
	// about one request in ten still opens a connection (measured with
	// nstat: 5,300 upstream connects for 51,000 requests over TCP). A
	// cache of 64 would remove that; 32 is what a deployment is more
	// likely to run (the generated config uses 8).
	keepaliveConns = 32
)

// nginxWorkers is 1, not auto (2 here). The two vCPUs are the bound
// either way: wrk, nginx and the backend together keep both busy (about
// 30 %, 60 % and 80 % of a CPU), so a second worker adds no capacity,
// only one more process to schedule and a split of wrk's 50 connections
// between two workers that differs from run to run. With one worker
// every run has the same shape, and runs differ only by the transport.
const nginxWorkers = 1

// plan is how long the part measures. The whole part must fit in about
// 1.5 minutes (20 s with -quick), setup included (about 0.5 s), which
// rules out the 10 s wrk runs in several rounds. Many short
// rounds beat few long ones here: this machine's noise (other work on
// the same 2 vCPUs) comes in bursts of seconds, and the Unix and TCP runs
// that a round pairs (see order) lie closer together. 3 s at 10,000 to
// 30,000 requests/s still puts hundreds of requests past the p99. So:
// 6 rounds × 4 cases × 3 s = 72 s, and 2 × 4 × 2 s = 16 s quick, two
// rounds so that even a smoke run goes through the interleaving.
type plan struct {
	rounds int
	dur    time.Duration // of one wrk run; whole seconds (wrk's -d)
	// budget bounds the whole part, should anything hang past its own
	// time-out.
	budget time.Duration
}

func planFor(quick bool) plan {
	if quick {
		return plan{rounds: 2, dur: 2 * time.Second, budget: time.Minute}
	}
	return plan{rounds: 6, dur: 3 * time.Second, budget: 3 * time.Minute}
}

// warmup is how many requests go through each nginx port, each checked to
// be the right backend's "ok PID", before wrk measures anything: it
// proves the routing, and the one-off costs of the first requests (nginx's
// and the backend's first allocations) stay out of the measurement.
const warmup = 200

// pathCase is one way from nginx to the backend.
type pathCase struct {
	unix      bool // the udsvisor-owned Unix socket, else TCP 127.0.0.1
	keepalive bool // an upstream pool of keepaliveConns, else a connection per request
	port      int  // nginx's listening port for this case
}

func (c pathCase) transport() string {
	if c.unix {
		return "Unix socket"
	}
	return "TCP 127.0.0.1"
}

func (c pathCase) mode() string {
	if c.keepalive {
		return fmt.Sprintf("keepalive %d", keepaliveConns)
	}
	return "no keepalive"
}

func (c pathCase) String() string { return c.transport() + ", " + c.mode() }

// part is one run of this part: its scratch directory and the processes
// it started.
type part struct {
	env     *report.Env
	dir     string // env.Dir/proxypath, removed on return
	sock    string // the backend's Unix socket, bound by udsvisor
	tcpAddr string // the TCP backend's address
	cases   []*pathCase

	udsvisor, tcpBackend, nginx *proc
	unixPID, tcpPID             int // the two backends' pids, from their answers
}

// Run measures nginx → backend over the Unix socket and over TCP, with and
// without upstream keepalive, and returns the figures. Without nginx or
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
	env.Logf("proxypath: set up in %v; measuring %d round(s) of 4 cases, %v each",
		time.Since(start).Round(time.Millisecond), pl.rounds, pl.dur)
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

// setup starts the backend under udsvisor, the TCP backend and nginx, and
// checks that each of nginx's ports answers with the right backend.
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
	ports, err := freePorts(5)
	if err != nil {
		return err
	}
	p.sock = filepath.Join(p.dir, "sock", "backend.sock")
	p.tcpAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[4]))
	p.cases = []*pathCase{
		{unix: true, port: ports[0]},
		{unix: false, port: ports[1]},
		{unix: true, keepalive: true, port: ports[2]},
		{unix: false, keepalive: true, port: ports[3]},
	}

	if err := p.startUdsvisor(ctx); err != nil {
		return err
	}
	if err := p.startTCPBackend(ctx, nobody); err != nil {
		return err
	}
	if p.unixPID == p.tcpPID {
		return fmt.Errorf("both backends answer as pid %d", p.unixPID)
	}
	if err := p.startNginx(ctx); err != nil {
		return err
	}
	return p.verifyPorts(ctx, warmup)
}

// servicesTOML is udsvisor's config: the backend as nobody on a socket
// nginx's workers (group www-data) may connect to, with its own control
// socket so that it never meets another udsvisor's.
const servicesTOML = `# Written by bench's proxypath part; removed with its directory.
[supervisor]
control_socket = %[1]q

[services.backend]
command = [%[2]q]
user = "nobody"
# The backend ends at once on SIGTERM; should it not, cleanup need not
# wait the default 10s.
stop_timeout = "2s"

[[services.backend.sockets]]
name = "http"
path = %[3]q
group = "www-data"
mode = "0660"
directory_mode = "0750"
`

// startUdsvisor runs `udsvisor up` on the backend and waits until the
// socket answers.
func (p *part) startUdsvisor(ctx context.Context) error {
	conf := filepath.Join(p.dir, "services.toml")
	text := fmt.Sprintf(servicesTOML, filepath.Join(p.dir, "ctl", "control.sock"), p.env.Backend, p.sock)
	// udsvisor refuses a config that is writable by anyone but root.
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return fmt.Errorf("udsvisor config: %w", err)
	}
	var err error
	p.udsvisor, err = startProc("udsvisor up", exec.Command(p.env.Udsvisor, "up", "-c", conf))
	if err != nil {
		return err
	}
	client := unixClient(p.sock)
	defer client.CloseIdleConnections()
	p.unixPID, err = waitAnswer(ctx, client, "http://backend/", p.udsvisor, 0)
	if err != nil {
		return fmt.Errorf("backend on %s under udsvisor: %w", p.sock, err)
	}
	p.env.Logf("proxypath: backend under udsvisor on %s, pid %d", p.sock, p.unixPID)
	return nil
}

// startTCPBackend runs the same backend binary as nobody, binding
// 127.0.0.1 itself, with the environment udsvisor gives its services (so
// that no GOGC or GOMAXPROCS of bench's makes it a different program).
func (p *part) startTCPBackend(ctx context.Context, nobody ids) error {
	cmd := exec.Command(p.env.Backend, "-bind", p.tcpAddr)
	cmd.Dir = "/"
	cmd.Env = []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"HOME=" + nobody.home, "USER=nobody", "LOGNAME=nobody",
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// An empty Groups drops root's supplementary groups, as udsvisor
		// does for its services.
		Credential: &syscall.Credential{Uid: nobody.uid, Gid: nobody.gid, Groups: []uint32{}},
	}
	var err error
	p.tcpBackend, err = startProc("TCP backend", cmd)
	if err != nil {
		return err
	}
	client := tcpClient()
	defer client.CloseIdleConnections()
	p.tcpPID, err = waitAnswer(ctx, client, "http://"+p.tcpAddr+"/", p.tcpBackend, p.tcpBackend.cmd.Process.Pid)
	if err != nil {
		return fmt.Errorf("backend on %s: %w", p.tcpAddr, err)
	}
	p.env.Logf("proxypath: backend on %s, pid %d", p.tcpAddr, p.tcpPID)
	return nil
}

// nginxMain is nginx's config around the four server blocks: every file
// it writes inside its prefix directory, no access log (it would measure
// the disk), workers as www-data like Debian's nginx.
const nginxMain = `# Written by bench's proxypath part; removed with its directory.
user www-data;
worker_processes %[2]d;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path %[1]s/tmp/body;
	proxy_temp_path %[1]s/tmp/proxy;
	fastcgi_temp_path %[1]s/tmp/fastcgi;
	uwsgi_temp_path %[1]s/tmp/uwsgi;
	scgi_temp_path %[1]s/tmp/scgi;
%[3]s}
`

// nginxServers writes one server block per case. Without keepalive
// proxy_pass names the backend directly: nginx speaks HTTP/1.0 with a new
// connection per request, as in the storm. With keepalive, nginx
// 1.22 needs all three of the upstream's keepalive, proxy_http_version 1.1
// and an empty Connection header, or it still closes every connection.
func (p *part) nginxServers() string {
	var b strings.Builder
	for _, c := range p.cases {
		// A Unix socket in proxy_pass ends with ":" (where a URI could
		// follow); in an upstream's server it does not.
		server, direct := p.tcpAddr, p.tcpAddr
		if c.unix {
			server, direct = "unix:"+p.sock, "unix:"+p.sock+":"
		}
		fmt.Fprintf(&b, "\n\t# %s\n", c)
		if !c.keepalive {
			fmt.Fprintf(&b, "\tserver {\n\t\tlisten 127.0.0.1:%d;\n\t\tlocation / { proxy_pass http://%s; }\n\t}\n", c.port, direct)
			continue
		}
		upstream := fmt.Sprintf("backend_%d", c.port)
		fmt.Fprintf(&b, "\tupstream %s {\n\t\tserver %s;\n\t\tkeepalive %d;\n\t}\n", upstream, server, keepaliveConns)
		fmt.Fprintf(&b, "\tserver {\n\t\tlisten 127.0.0.1:%d;\n\t\tlocation / {\n"+
			"\t\t\tproxy_pass http://%s;\n\t\t\tproxy_http_version 1.1;\n\t\t\tproxy_set_header Connection \"\";\n"+
			"\t\t}\n\t}\n", c.port, upstream)
	}
	return b.String()
}

// startNginx writes nginx's config and runs it in the foreground.
func (p *part) startNginx(ctx context.Context) error {
	prefix := filepath.Join(p.dir, "nginx")
	if err := os.MkdirAll(filepath.Join(prefix, "tmp"), 0o755); err != nil {
		return fmt.Errorf("nginx directory: %w", err)
	}
	conf := filepath.Join(prefix, "nginx.conf")
	text := fmt.Sprintf(nginxMain, prefix, nginxWorkers, p.nginxServers())
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return fmt.Errorf("nginx config: %w", err)
	}
	// -e: even the error log nginx opens before reading its config is
	// ours, not /var/log/nginx/error.log.
	cmd := exec.Command("nginx", "-p", prefix+"/", "-e", filepath.Join(prefix, "error.log"),
		"-c", conf, "-g", "daemon off;")
	var err error
	p.nginx, err = startProc("nginx", cmd)
	if err != nil {
		return err
	}
	// Each port listens once the first answer comes back.
	client := tcpClient()
	defer client.CloseIdleConnections()
	for _, c := range p.cases {
		if _, err := waitAnswer(ctx, client, p.url(c), p.nginx, 0); err != nil {
			return fmt.Errorf("nginx on port %d (%s): %w\nnginx error log:\n%s", c.port, c, err, p.nginxErrors(20))
		}
	}
	p.env.Logf("proxypath: nginx (%d worker) on 127.0.0.1 ports %d, %d, %d, %d", nginxWorkers,
		p.cases[0].port, p.cases[1].port, p.cases[2].port, p.cases[3].port)
	return nil
}

func (p *part) url(c *pathCase) string { return fmt.Sprintf("http://127.0.0.1:%d/", c.port) }

// verifyPorts sends n requests through each of nginx's ports and checks
// every answer: status 200 and "ok PID" with the pid of the backend that
// case is meant to reach. wrk cannot check bodies without a Lua hook that
// would slow it down, so this is where the answers are proven right;
// during the runs, wrk's error-status and socket-error counts stand for it.
func (p *part) verifyPorts(ctx context.Context, n int) error {
	client := tcpClient()
	defer client.CloseIdleConnections()
	for _, c := range p.cases {
		want := p.tcpPID
		if c.unix {
			want = p.unixPID
		}
		for i := 0; i < n; i++ {
			pid, err := get(ctx, client, p.url(c))
			if err != nil {
				return fmt.Errorf("nginx, %s: request %d of %d: %w", c, i+1, n, err)
			}
			if pid != want {
				return fmt.Errorf("nginx, %s: answered by pid %d, want the backend's %d", c, pid, want)
			}
		}
	}
	return nil
}

// measure runs wrk on every case, round after round, in the order of
// order, and returns results[i], case i's runs in round order.
func (p *part) measure(ctx context.Context, pl plan) ([][]wrkResult, error) {
	results := make([][]wrkResult, len(p.cases))
	for round := 0; round < pl.rounds; round++ {
		for _, i := range order(round) {
			c := p.cases[i]
			res, err := runWrk(ctx, p.url(c), pl.dur)
			if err != nil {
				return nil, fmt.Errorf("round %d, %s: %w", round+1, c, err)
			}
			if err := p.alive(); err != nil {
				return nil, fmt.Errorf("round %d, %s: %w", round+1, c, err)
			}
			results[i] = append(results[i], res)
			p.env.Logf("proxypath: round %d/%d, %s: %.0f requests/s, p99 %v, %d failed of %d",
				round+1, pl.rounds, c, res.RPS, res.P99, res.Errors(), res.Requests)
		}
	}
	return results, nil
}

// order is the order of the cases (indexes into part.cases: Unix and TCP
// without keepalive, then with) in a round. The Unix and TCP runs of one
// keepalive mode, which the ratio rows pair, always run back to back; odd
// rounds swap the two modes, and every other pair of rounds runs TCP
// before Unix, so that no case always runs first, or always right after
// the TCP case without keepalive (which leaves tens of thousands of
// TIME_WAIT sockets behind), and slow drift does not favour either side.
func order(round int) []int {
	pairs := [][2]int{{0, 1}, {2, 3}}
	if round%2 == 1 {
		pairs[0], pairs[1] = pairs[1], pairs[0]
	}
	var out []int
	for _, pr := range pairs {
		if (round/2)%2 == 1 {
			pr[0], pr[1] = pr[1], pr[0]
		}
		out = append(out, pr[0], pr[1])
	}
	return out
}

// alive checks that none of the long-running processes has ended.
func (p *part) alive() error {
	for _, q := range []*proc{p.udsvisor, p.tcpBackend, p.nginx} {
		if done, err := q.exited(); done {
			return q.exitError(err)
		}
	}
	return nil
}

// figures turns the runs into table rows.
//
// report.Print has one column per supervisor, each with its ratio to
// udsvisor. The TCP backend is not a supervisor (it runs under none), so
// it gets no column: a TCP column would print "×ratio to udsvisor" under
// supervisord's name. Instead every case is a row of its own with only
// the udsvisor column filled (this is udsvisor's deployment: the Unix
// socket is what it offers, TCP 127.0.0.1 what it replaces), and the
// comparison is a row of its own, "Unix ÷ TCP requests/s", with the
// issue's target. Its samples are paired per round: the Unix and TCP
// runs of one round ran within seconds of each other, so the ratio
// cancels the machine's slow drift. The peers' columns stay empty: the
// path from nginx to a socket does not depend on who supervises the
// backend, only on the transport.
func (p *part) figures(results [][]wrkResult) []report.Figure {
	var figs []report.Figure
	udsvisor := func(name, unit, target string, samples []float64) {
		figs = append(figs, report.Figure{Name: name, Unit: unit, Target: target,
			Results: map[string]report.Result{report.Udsvisor: {Samples: samples}}})
	}
	for _, keepalive := range []bool{false, true} {
		var unix, tcp int
		for i, c := range p.cases {
			if c.keepalive == keepalive {
				if c.unix {
					unix = i
				} else {
					tcp = i
				}
			}
		}
		uc, tc := p.cases[unix], p.cases[tcp]
		rps := func(i int) []float64 { return collect(results[i], func(r wrkResult) float64 { return r.RPS }) }
		p99 := func(i int) []float64 {
			return collect(results[i], func(r wrkResult) float64 { return float64(r.P99) / float64(time.Millisecond) })
		}
		var ratio []float64
		for r := range results[unix] {
			if t := results[tcp][r].RPS; t > 0 {
				ratio = append(ratio, results[unix][r].RPS/t)
			}
		}
		udsvisor("nginx → "+uc.String(), "requests/s", "", rps(unix))
		udsvisor("nginx → "+tc.String(), "requests/s", "", rps(tcp))
		udsvisor("nginx, "+uc.mode()+": Unix ÷ TCP requests/s", "", "≥ 1", ratio)
		udsvisor("nginx → "+uc.String()+": p99", "ms", "", p99(unix))
		udsvisor("nginx → "+tc.String()+": p99", "ms", "", p99(tcp))
	}
	// Every error status and socket error counts, of the requests wrk
	// completed plus those a socket error cut short: wrk's count leaves
	// those out. Target 0: nothing on this path should fail under load.
	var failed, total int64
	for _, runs := range results {
		for _, r := range runs {
			failed += r.Errors()
			total += r.Requests + r.SocketErrors
		}
	}
	figs = append(figs, report.Figure{
		Name:   fmt.Sprintf("nginx → backend, all 4 cases: failed of %d requests", total),
		Target: "0",
		Results: map[string]report.Result{report.Udsvisor: {
			Samples: []float64{float64(failed)}, Note: p.errorSummary(results),
		}},
	})
	return figs
}

// errorSummary names the cases that had failed requests, or is "".
func (p *part) errorSummary(results [][]wrkResult) string {
	var parts []string
	for i, runs := range results {
		var non2xx, sock int64
		for _, r := range runs {
			non2xx += r.Non2xx
			sock += r.SocketErrors
		}
		if non2xx+sock > 0 {
			parts = append(parts, fmt.Sprintf("%s: %d error statuses, %d socket errors", p.cases[i], non2xx, sock))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	s := "(" + strings.Join(parts, "; ") + ")"
	if log := p.nginxErrors(3); log != "" {
		s += "; nginx's error log ends: " + strings.ReplaceAll(strings.TrimSpace(log), "\n", " | ")
	}
	return s
}

func collect(rs []wrkResult, f func(wrkResult) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

// nginxErrors returns the last n lines of nginx's error log.
func (p *part) nginxErrors(n int) string {
	b, err := os.ReadFile(filepath.Join(p.dir, "nginx", "error.log"))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stopAll stops nginx first (no more requests to the backends), then the
// TCP backend, then udsvisor, which stops its backend and removes the
// socket. Each gets SIGTERM, then SIGKILL to its whole process group.
func (p *part) stopAll() error {
	var errs []error
	if p.nginx != nil {
		errs = append(errs, p.nginx.stop(syscall.SIGTERM, 5*time.Second))
	}
	if p.tcpBackend != nil {
		errs = append(errs, p.tcpBackend.stop(syscall.SIGTERM, 5*time.Second))
	}
	if p.udsvisor != nil {
		// Within the backend's stop_timeout of 2s, and then some.
		errs = append(errs, p.udsvisor.stop(syscall.SIGTERM, 10*time.Second))
	}
	return errors.Join(errs...)
}

// runWrk runs one wrk measurement of url for dur and parses its output.
// It gives up 15 s past dur: wrk stops on its own at dur (requests still
// open then count as time-outs), so this bounds only a hang.
func runWrk(ctx context.Context, url string, dur time.Duration) (wrkResult, error) {
	wctx, cancel := context.WithTimeout(ctx, dur+15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(wctx, "wrk",
		"-t"+strconv.Itoa(wrkThreads), "-c"+strconv.Itoa(wrkConnections),
		"-d"+strconv.Itoa(int(dur/time.Second))+"s", "--latency", url)
	// Its own group, so that Ctrl-C reaches bench, which cancels ctx and
	// kills wrk here, rather than wrk, which would print a partial run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return wrkResult{}, fmt.Errorf("wrk stopped: %w", context.Cause(ctx))
		}
		return wrkResult{}, fmt.Errorf("wrk %s: %w: %s%s", url, err, stderr.String(), stdout.String())
	}
	res, err := parseWrk(stdout.String())
	if err != nil {
		return wrkResult{}, fmt.Errorf("%w; wrk printed:\n%s", err, stdout.String())
	}
	if res.Requests == 0 {
		return wrkResult{}, fmt.Errorf("wrk %s completed no request; it printed:\n%s", url, stdout.String())
	}
	return res, nil
}

// waitAnswer polls url until it answers "ok PID" (with wantPID, unless 0)
// and returns the pid. It fails at once if q exits, and after 20 s or
// 400 attempts, whichever comes first.
func waitAnswer(ctx context.Context, client *http.Client, url string, q *proc, wantPID int) (int, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, 20*time.Second, errors.New("none within 20 s"))
	defer cancel()
	var last error
	for attempt := 0; attempt < 400; attempt++ {
		if done, err := q.exited(); done {
			return 0, q.exitError(err)
		}
		pid, err := get(ctx, client, url)
		switch {
		case err == nil && wantPID != 0 && pid != wantPID:
			return 0, fmt.Errorf("answered by pid %d, want %d", pid, wantPID)
		case err == nil:
			return pid, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("no answer (%w); last error: %v", context.Cause(ctx), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return 0, fmt.Errorf("no answer after 400 attempts; last error: %v", last)
}

// get sends one GET and returns the pid of the backend's "ok PID" answer.
func get(ctx context.Context, client *http.Client, url string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if err != nil {
		return 0, fmt.Errorf("GET %s: body: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s: %q", url, resp.Status, body)
	}
	pid, ok := strings.CutPrefix(strings.TrimSpace(string(body)), "ok ")
	n, err := strconv.Atoi(pid)
	if !ok || err != nil {
		return 0, fmt.Errorf("GET %s: %q is not the backend's \"ok PID\"", url, body)
	}
	return n, nil
}

// tcpClient talks to loopback addresses, never through a proxy from the
// environment.
func tcpClient() *http.Client {
	return &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}}
}

// unixClient sends every request to the Unix socket sock.
func unixClient(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
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

// ids are a user's numeric ids and home directory.
type ids struct {
	uid, gid uint32
	home     string
}

func lookupIDs(name string) (ids, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return ids{}, fmt.Errorf("user %s: %w", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return ids{}, fmt.Errorf("user %s: ids %s:%s: %w", name, u.Uid, u.Gid, err)
	}
	return ids{uid: uint32(uid), gid: uint32(gid), home: u.HomeDir}, nil
}
