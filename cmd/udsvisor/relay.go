// SPDX-License-Identifier: Apache-2.0

//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/relay"
)

// relayArg runs the relay of a [services.X.relay] service:
//
//	udsvisor __relay -port N [-proxy v1|v2] [-connect-timeout D] -- APP ARGV...
//
// Hidden, as the launch helper's argument is: the supervisor starts it,
// as the service's user inside the service's fresh network namespace,
// with the service's sockets at fd 3 and up (LISTEN_FDS, LISTEN_PID).
// It starts APP as its child and relays the sockets' connections to
// 127.0.0.1:N, the app's own loopback (see package relay).
//
// Signals. The supervisor signals the whole process group, so the relay
// and the app each get every signal. SIGTERM and SIGINT make the relay
// stop accepting at once (new connections wait in the backlog for the
// next process); it keeps relaying the connections in flight until the
// app exits. SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are the app's business
// (reload, reopen logs...), and the relay ignores them rather than die or
// dump its stacks, the Go runtime's default; they are caught, not set to
// SIG_IGN, so that the app does not inherit them ignored.
//
// Exit. When the app exits, for whatever reason, the relay stops
// accepting, gives the connections in flight up to relayGrace to finish
// (the app's end of them is closed, so they normally end at once), and
// exits with the app's status, so that the supervisor's restart policy
// and status see the app's outcome: the same exit code; the same signal
// if the app was killed by SIGHUP, SIGINT, SIGTERM or SIGKILL, re-raised
// on the relay; exit code 128+N for any other signal N, as a shell
// reports it (the Go runtime turns a raised SIGSEGV, SIGABRT or SIGQUIT
// into a stack dump and exit status 2 instead of dying by it). If a
// listener fails, the relay kills the app (SIGKILL: relay.Serve returned
// after its last connection, so the app has none in flight), waits for
// it and exits with status 1.
const relayArg = "__relay"

// relayGrace is how long the relay waits for its connections in flight
// after the app exited: long enough to deliver the app's last bytes to
// slow clients, short enough not to delay the restart of the pair.
const relayGrace = time.Second

// relayEnvDrop are the variables the app must not see: it is not socket
// activated, and its pid is not LISTEN_PID anyway.
var relayEnvDrop = []string{"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "LISTEN_PIDFDID"}

// runRelay is `udsvisor __relay`; see relayArg.
func runRelay(args []string, stderr io.Writer) error {
	opts, argv, err := parseRelayFlags(args, stderr)
	if err != nil {
		return err
	}
	lns, err := relayListeners()
	if err != nil {
		return err
	}
	log := newLogger("console", zapcore.InfoLevel)
	defer log.Sync()

	// Before the app starts: from then on a signal to the group may come.
	stopc := make(chan os.Signal, 1) // a second stop signal adds nothing
	signal.Notify(stopc, unix.SIGTERM, unix.SIGINT)
	// Never read: Notify drops what does not fit, and these signals only
	// need not to kill the relay.
	signal.Notify(make(chan os.Signal, 1), unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2)

	app := exec.Command(argv[0], argv[1:]...)
	app.Env = relayEnv(os.Environ())
	app.Stdout, app.Stderr = os.Stdout, os.Stderr // stdin: /dev/null
	// Same process group (no Setpgid), so the supervisor's signals reach
	// the app. Pdeathsig: if the relay dies alone, the app goes too, not
	// left serving a namespace nobody relays to. It is sent when the
	// forking thread ends; this runs on the main thread (main's init
	// locks it), which ends only with the process.
	app.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: unix.SIGKILL}
	if err := app.Start(); err != nil {
		closeAll(lns)
		return fmt.Errorf("relay: start app: %w", err)
	}
	exited := make(chan error, 1) // Wait's one result
	go func() { exited <- app.Wait() }()

	target := fmt.Sprintf("127.0.0.1:%d", opts.Port)
	addrs := make([]string, len(lns))
	for i, ln := range lns {
		addrs[i] = ln.Addr().Network() + ":" + ln.Addr().String()
	}
	log.Info(fmt.Sprintf("relaying %d sockets to %s", len(lns), target),
		zap.Strings("sockets", addrs), zap.Int("app_pid", app.Process.Pid), zap.String("app", argv[0]))

	ctx, stopAccepting := context.WithCancel(context.Background())
	defer stopAccepting()
	served := make(chan error, 1) // Serve's one result; nil once taken
	go func(c chan<- error) { c <- relay.Serve(ctx, lns, opts, log) }(served)

	var failed error // the relay's own failure, which outranks the app's status
	for {
		select {
		case sig := <-stopc:
			if ctx.Err() == nil {
				log.Info("stopping: no new connections; waiting for the app to exit", zap.Stringer("signal", sig))
				stopAccepting()
			}
		case err := <-served:
			served = nil
			if err != nil && failed == nil {
				failed = fmt.Errorf("relay: %w", err)
				log.Error("relay failed; killing the app", zap.Error(err))
				app.Process.Signal(unix.SIGKILL)
			}
		case err := <-exited:
			stopAccepting()
			if served != nil {
				t := time.NewTimer(relayGrace)
				select {
				case err := <-served:
					if err != nil && failed == nil {
						failed = fmt.Errorf("relay: %w", err)
					}
				case <-t.C:
					log.Warn("connections still open after the app exited; the relay's exit closes them", zap.Duration("grace", relayGrace))
				}
				t.Stop()
			}
			if failed != nil {
				return failed
			}
			return appOutcome(err, app.ProcessState, log)
		}
	}
}

// parseRelayFlags parses `-port N [-proxy v1|v2] [-connect-timeout D]
// -- APP ARGV...`. The -- is required so that the app's own flags are
// never taken for the relay's.
func parseRelayFlags(args []string, stderr io.Writer) (relay.Options, []string, error) {
	var opts relay.Options
	fs := flag.NewFlagSet(relayArg, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: udsvisor %s -port N [-proxy v1|v2] [-connect-timeout D] -- APP ARGV...\n", relayArg)
		fs.PrintDefaults()
	}
	fs.IntVar(&opts.Port, "port", 0, "the TCP `port` the app listens on at 127.0.0.1 (required)")
	fs.Var(&opts.Proxy, "proxy", "send the app a PROXY protocol header, `v1 or v2`, first on each connection")
	fs.DurationVar(&opts.ConnectTimeout, "connect-timeout", 30*time.Second, "how long a client waits for the app to accept on its port")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return opts, nil, err
		}
		return opts, nil, usageError{err}
	}
	argv := fs.Args()
	if dash := len(args) - len(argv) - 1; dash < 0 || args[dash] != "--" {
		return opts, nil, usageError{errors.New("the app's command goes after --")}
	}
	switch {
	case opts.Port < 1 || opts.Port > 65535:
		return opts, nil, usageError{fmt.Errorf("-port %d: want a TCP port, 1 to 65535", opts.Port)}
	case opts.ConnectTimeout <= 0:
		return opts, nil, usageError{fmt.Errorf("-connect-timeout %v: want a positive duration", opts.ConnectTimeout)}
	case len(argv) == 0:
		return opts, nil, usageError{errors.New("no app command after --")}
	case !filepath.IsAbs(argv[0]):
		// The supervisor resolved it at load; a relative name here would
		// be looked up in a PATH the operator never checked.
		return opts, nil, usageError{fmt.Errorf("app %q: want an absolute path", argv[0])}
	}
	return opts, argv, nil
}

// relayListeners takes the sockets passed at fd 3 and up. Every one must
// be a stream listener: a socket the relay cannot serve is an error, not
// a hole (go-systemd's Listeners leaves nil for it).
func relayListeners() ([]net.Listener, error) {
	files := activation.Files(true)
	if len(files) == 0 {
		return nil, usageError{errors.New("no sockets were passed (LISTEN_FDS is unset or LISTEN_PID is not this process); udsvisor starts __relay for a service with [services.X.relay]")}
	}
	var lns []net.Listener
	for i, f := range files {
		// FileListener works on a dup, so fd 3+i is closed either way.
		ln, err := net.FileListener(f)
		f.Close()
		if err == nil {
			if n := ln.Addr().Network(); n != "tcp" && n != "unix" {
				ln.Close()
				err = fmt.Errorf("a %s socket; the relay carries streams only", n)
			}
		}
		if err != nil {
			closeAll(lns)
			return nil, fmt.Errorf("relay: socket %d (fd %d, %s): %w", i, 3+i, f.Name(), err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

// relayEnv is env without relayEnvDrop.
func relayEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(relayEnvDrop, name) {
			out = append(out, kv)
		}
	}
	return out
}

// relayExit is the app's failure as the relay's: report prints it and
// exits with its code.
type relayExit struct {
	msg  string
	code int
}

func (e relayExit) Error() string { return e.msg }
func (e relayExit) ExitCode() int { return e.code }

// appOutcome turns the app's end into the relay's: nil for status 0, a
// relayExit with the same code, or for a signal the same death (see
// relayArg). waitErr is what Wait returned.
func appOutcome(waitErr error, st *os.ProcessState, log *zap.Logger) error {
	if st == nil {
		return fmt.Errorf("relay: wait for the app: %w", waitErr)
	}
	ws, ok := st.Sys().(syscall.WaitStatus)
	switch {
	case !ok:
		return fmt.Errorf("relay: app: %v", st)
	case ws.Exited() && ws.ExitStatus() == 0:
		log.Info("app exited", zap.Int("status", 0))
		return nil
	case ws.Exited():
		log.Info("app exited", zap.Int("status", ws.ExitStatus()))
		return relayExit{fmt.Sprintf("relay: app exited with status %d", ws.ExitStatus()), ws.ExitStatus()}
	}
	sig := ws.Signal()
	log.Info("app was killed", zap.String("signal", unix.SignalName(sig)))
	switch sig {
	case unix.SIGHUP, unix.SIGINT, unix.SIGTERM, unix.SIGKILL:
		// The runtime's own handling of these (with Notify undone) is to
		// die by the signal. Sent to this thread, which does not block
		// it, the signal is handled before Tgkill returns.
		signal.Reset(sig)
		log.Sync()
		unix.Tgkill(os.Getpid(), unix.Gettid(), sig)
		// Still here: the signal was ignored when udsvisor started us
		// (nohup), and Reset kept it so. Fall through to the exit code.
	}
	return relayExit{fmt.Sprintf("relay: app killed by %s", unix.SignalName(sig)), 128 + int(sig)}
}
