// SPDX-License-Identifier: Apache-2.0

//go:build linux

// Command backend is the benchmark's HTTP service. It serves the socket it
// inherits (LISTEN_FDS, fd 3, as under udsvisor or systemd), or one on any
// fd (-fd 0, as s6-fdholder-retrieve or supervisord's fcgi-program hand
// it over), or binds a Unix socket or TCP address itself (-bind), as apps
// under supervisors that do not own sockets do.
//
// GET / answers "ok <pid>"; GET /poison makes the process exit 1 at once,
// the "poison request" that kills the process serving it.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/coreos/go-systemd/v22/activation"
)

func main() {
	fd := flag.Int("fd", -1, "serve the listening socket on this fd instead of LISTEN_FDS")
	bind := flag.String("bind", "", "bind this yourself: a Unix socket path (unlinked first, mode 0666) or host:port")
	flag.Parse()

	l, err := listener(*fd, *bind)
	if err != nil {
		log.Fatalf("backend: %v", err)
	}
	pid := os.Getpid()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/poison" {
			os.Exit(1)
		}
		fmt.Fprintf(w, "ok %d\n", pid)
	})
	log.Fatal(http.Serve(l, h))
}

func listener(fd int, bind string) (net.Listener, error) {
	switch {
	case fd >= 0:
		return net.FileListener(os.NewFile(uintptr(fd), "listener"))
	case strings.HasPrefix(bind, "/"):
		os.Remove(bind)
		l, err := net.Listen("unix", bind)
		if err == nil {
			err = os.Chmod(bind, 0o666)
		}
		return l, err
	case bind != "":
		return net.Listen("tcp", bind)
	}
	ls, err := activation.Listeners()
	if err != nil {
		return nil, err
	}
	if len(ls) == 0 {
		return nil, fmt.Errorf("no socket: pass LISTEN_FDS, -fd or -bind")
	}
	return ls[0], nil
}
