// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/idname"
)

// runDemo is the demo backend of services.toml.example: an HTTP server
// written for systemd socket activation, exactly as an app would be. It
// never binds anything itself; it serves the sockets udsvisor passed.
func runDemo(args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	if err := parseFlags(fs, args, os.Stderr); err != nil {
		return err
	}
	byName, err := activation.ListenersWithNames()
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if len(byName) == 0 {
		return errors.New("demo: no sockets were passed (LISTEN_FDS is unset or LISTEN_PID is not this process); run it under udsvisor up, see services.toml.example")
	}
	who := idname.User(uint32(os.Getuid()))
	// SIGTERM (udsvisor's default stop_signal) finishes the requests in
	// flight, then exits 0. The channel holds the one signal that matters.
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM, unix.SIGINT)
	defer stop()
	var servers []*http.Server
	errc := make(chan error, len(byName)) // every server may fail once
	for name, ls := range byName {
		for _, l := range ls {
			fmt.Printf("demo: serving socket %q as %s, pid %d\n", name, who, os.Getpid())
			srv := &http.Server{Handler: demoHandler(name, who), ReadHeaderTimeout: 10 * time.Second}
			servers = append(servers, srv)
			go func(name string, l net.Listener) {
				errc <- fmt.Errorf("demo: serve %s: %w", name, srv.Serve(l))
			}(name, l)
		}
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	fmt.Println("demo: stopping")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, srv := range servers {
		srv.Shutdown(shutdownCtx)
	}
	return nil
}

func demoHandler(socket, who string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "Hello from the udsvisor demo: pid %d, user %s, socket %q\n", os.Getpid(), who, socket)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	return mux
}
