// SPDX-License-Identifier: Apache-2.0

// Command testapp is the service that udsvisor's tests supervise: a real
// program written the way an app for systemd socket activation is, with
// go-systemd's activation package. On every socket it was given it serves
// HTTP; GET / answers with a JSON report of what the process sees
// (testapp.Report in internal/testutil/testapp, which the tests decode),
// so tests can compare it with what the kernel says in /proc.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"

	"github.com/udsvisor/udsvisor/internal/testutil/testapp"
)

func main() {
	ignoreTerm := flag.Bool("ignore-term", false, "ignore SIGTERM")
	grandchild := flag.Bool("grandchild", false, "start a SIGTERM-ignoring grandchild in the same process group")
	escape := flag.Bool("escape", false, "start the grandchild in a session of its own, outside the service's process group")
	sleeper := flag.Bool("sleeper", false, "internal: be that grandchild")
	exitCode := flag.Int("exit", -1, "exit at once with this code")
	delay := flag.Duration("delay", 0, "wait this long before serving")
	hello := flag.String("hello", "", "print this line to stdout at start-up and to stderr with the pid")
	failIf := flag.String("fail-if", "", "exit with status 1 at once if this file exists (a deploy that does not start)")
	stdin := flag.Bool("stdin", false, "also serve the listening socket on fd 0")
	bind := flag.String("bind", "", "bind this Unix socket path itself (unlink, bind, chmod 0666) instead of using socket activation, the way apps do without udsvisor")
	flag.Parse()
	notifyOnce()

	if *sleeper {
		signal.Ignore(syscall.SIGTERM)
		select {}
	}
	if *hello != "" {
		fmt.Println(*hello)
		fmt.Fprintf(os.Stderr, "%s (stderr) pid %d\n", *hello, os.Getpid())
	}
	if *exitCode >= 0 {
		os.Exit(*exitCode)
	}
	if _, err := os.Stat(*failIf); *failIf != "" && err == nil {
		fmt.Fprintln(os.Stderr, "failing on purpose:", *failIf, "exists")
		os.Exit(1)
	}
	rep := testapp.Report{
		Pid: os.Getpid(), UID: os.Getuid(), GID: os.Getgid(),
		ListenPID: os.Getenv("LISTEN_PID"), ListenFDs: os.Getenv("LISTEN_FDS"),
		FDNames: os.Getenv("LISTEN_FDNAMES"), Env: os.Environ(),
	}
	rep.Groups, _ = os.Getgroups()
	rep.Cwd, _ = os.Getwd()
	if *ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
	} else if *graceful {
		shutdownOnTerm()
	}
	if *grandchild || *escape {
		cmd := exec.Command("/proc/self/exe", "-sleeper")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: *escape}
		if err := cmd.Start(); err != nil {
			log.Fatal(err)
		}
		rep.Grandchild = cmd.Process.Pid
		grandchildPid = cmd.Process.Pid
	}
	time.Sleep(*delay)

	if *bind != "" {
		serve(selfBind(*bind), "bind", rep)
	}
	if *stdin {
		// A listening socket on fd 0 (stdin = true), as inetd and
		// systemd's StandardInput=socket hand one.
		l, err := net.FileListener(os.Stdin)
		if err != nil {
			log.Fatalf("stdin is no listening socket: %v", err)
		}
		go serve(l, "stdin", rep)
	}
	byName, err := activation.ListenersWithNames()
	if err != nil {
		log.Fatal(err)
	}
	if len(byName) == 0 && !*stdin {
		log.Fatal("no sockets passed (LISTEN_FDS unset or LISTEN_PID wrong)")
	}
	for name := range byName {
		rep.Names = append(rep.Names, name)
	}
	sort.Strings(rep.Names)
	for name, ls := range byName {
		for _, l := range ls {
			go serve(l, name, rep)
		}
	}
	startNotify()
	select {} // serve's goroutines serve; a graceful exit is shutdownOnTerm's
}

func serve(l net.Listener, name string, rep testapp.Report) {
	rep.Socket = name
	mux := http.NewServeMux()
	// Every path answers, so a reverse proxy may strip its location
	// prefix or not.
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		rep := rep
		rep.Path = r.URL.Path
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(rep)
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		d, _ := time.ParseDuration(r.URL.Query().Get("d"))
		time.Sleep(d)
		fmt.Fprintf(w, "slept %v in %d\n", d, os.Getpid())
	})
	mux.HandleFunc("POST /exit", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		os.Exit(code)
	})
	proxyHandlers(mux, name)
	srv := &http.Server{Handler: mux}
	if !*graceful {
		log.Fatal(srv.Serve(l))
	}
	srv.ConnState = conns.track
	serving.Add(1)
	listeners <- l
	err := srv.Serve(l)
	serving.Done()
	select {
	case <-stopping:
		select {} // shutdownOnTerm exits once the requests in flight are done
	default:
		log.Fatal(err)
	}
}

// graceful makes SIGTERM stop the servers the way an app should: stop
// accepting, finish the requests in flight, exit 0. http.Server.Shutdown
// will not do: a request it has not read yet when it is called is
// dropped unanswered, even on a connection accepted before.
var graceful = flag.Bool("graceful", false, "on SIGTERM, stop accepting, finish the requests in flight and exit 0")

var (
	// listeners receives each listener served, to close on SIGTERM.
	listeners = make(chan net.Listener, 16)
	// stopping is closed once SIGTERM has come.
	stopping = make(chan struct{})
	// serving counts the Serve loops running: one that has returned has
	// counted every connection it accepted.
	serving sync.WaitGroup
	conns   = &connCount{conns: map[net.Conn]http.ConnState{}, zero: make(chan struct{}, 1)}
)

// connCount tracks the open connections; zero has a value whenever
// their count drops to 0. Once stopping, a connection that is idle
// between requests (a proxy's keep-alive connection) is closed: it would
// otherwise keep the process alive until stop_timeout.
type connCount struct {
	mu       sync.Mutex
	conns    map[net.Conn]http.ConnState
	stopping bool
	zero     chan struct{}
}

func (c *connCount) track(conn net.Conn, st http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch st {
	case http.StateClosed, http.StateHijacked:
		delete(c.conns, conn)
		if len(c.conns) == 0 {
			select {
			case c.zero <- struct{}{}:
			default:
			}
		}
	case http.StateIdle:
		c.conns[conn] = st
		if c.stopping {
			conn.Close()
		}
	default:
		c.conns[conn] = st
	}
}

// stop closes the idle connections and those that become idle.
func (c *connCount) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopping = true
	for conn, st := range c.conns {
		if st == http.StateIdle {
			conn.Close()
		}
	}
}

func (c *connCount) open() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.conns)
}

func shutdownOnTerm() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM)
	go func() {
		<-c
		close(stopping)
		for len(listeners) > 0 {
			(<-listeners).Close()
		}
		serving.Wait()
		conns.stop()
		// Every connection accepted so far is answered; the connections
		// close after their answer (the clients ask so), and then the
		// process is done.
		for conns.open() > 0 {
			<-conns.zero
		}
		os.Exit(0)
	}()
}

// selfBind listens on path the way apps without socket activation do:
// remove whatever is there and bind anew. From the death of the previous
// process to the listen, connections are refused or find no socket, and
// until the chmod the proxy is denied; the integration tests measure that
// gap against udsvisor-owned sockets.
func selfBind(path string) net.Listener {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		log.Fatal(err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		log.Fatal(err)
	}
	// The proxy runs as another user; 0666 is what such apps commonly
	// resort to, and the directory decides who reaches it.
	if err := os.Chmod(path, 0o666); err != nil {
		log.Fatal(err)
	}
	// The barrier tests wait on: udsvisor logs this line, so they need
	// not poll for the socket file.
	fmt.Println("listening on", path)
	return l
}
