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
	rep := testapp.Report{
		Pid: os.Getpid(), UID: os.Getuid(), GID: os.Getgid(),
		ListenPID: os.Getenv("LISTEN_PID"), ListenFDs: os.Getenv("LISTEN_FDS"),
		FDNames: os.Getenv("LISTEN_FDNAMES"), Env: os.Environ(),
	}
	rep.Groups, _ = os.Getgroups()
	rep.Cwd, _ = os.Getwd()
	if *ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
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
	byName, err := activation.ListenersWithNames()
	if err != nil {
		log.Fatal(err)
	}
	if len(byName) == 0 {
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
	select {}
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
	log.Fatal(http.Serve(l, mux))
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
