package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"

	"github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/sockets"
	"github.com/udsvisor/udsvisor/supervisor"
	"github.com/udsvisor/udsvisor/supervisor/config"
	"github.com/udsvisor/udsvisor/supervisor/control"
)

func runUp(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	cfgPath := configFlag(fs)
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	// Once, before any thread can create a file: every socket is born
	// 0600 or stricter and widened with chmod afterwards. The umask is
	// shared by all threads, so it is never toggled around a bind.
	unix.Umask(0o077)
	// fds inherited from whoever started udsvisor would leak into every
	// child through os/exec (golang/go#37857).
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fmt.Errorf("close_range: %w", err)
	}

	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Supervisor.LogFormat)
	defer log.Sync()
	for _, w := range cfg.Warnings {
		log.Warn(w.Error())
	}

	// The control socket comes first: while another udsvisor answers on
	// it, this one must touch nothing, not even a stale service socket.
	ctl, err := bindControl(cfg.Supervisor)
	if err != nil {
		return err
	}
	defer ctl.Close()

	// Grandchildren that escape their service's process group are
	// reparented to udsvisor rather than to PID 1, so that they are
	// reaped here.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		log.Warn("cannot become a subreaper; escaped grandchildren go to PID 1", zap.Error(err))
	}

	// Notify, never Ignore: an ignored signal stays ignored in children.
	// The channel holds one signal per kind that matters.
	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	defer signal.Stop(sigc)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	sup := supervisor.New(cfg, log, supervisor.Options{ReapOrphans: true})
	srv := control.New(sup, control.Options{
		ControlGID: cfg.Supervisor.ControlGroup, StatusGID: cfg.Supervisor.StatusGroup, Log: log,
	})
	l, err := net.FileListener(ctl.File())
	if err != nil {
		return fmt.Errorf("control socket %s: %w", cfg.Supervisor.ControlSocket, err)
	}
	srvDone := make(chan error, 1) // Serve returns once
	go func() { srvDone <- srv.Serve(ctx, l) }()

	go handleSignals(ctx, sigc, sup, log, cancel)
	ready := func() { notify(log, daemon.SdNotifyReady) }
	runErr := sup.Run(ctx, ready)
	cancel()
	if err := <-srvDone; err != nil {
		log.Warn("control API", zap.Error(err))
	}
	if runErr != nil {
		return runErr
	}
	log.Info("udsvisor stopped")
	return nil
}

// bindControl creates the control socket root:control_group with
// control_mode, through the same safe path as service sockets. A live
// socket there means another udsvisor runs.
func bindControl(c config.Supervisor) (*sockets.Listener, error) {
	gid := max(c.ControlGroup, 0)
	l, err := sockets.Bind(sockets.Spec{
		Path: c.ControlSocket, UID: 0, GID: gid, Mode: c.ControlMode, DirMode: 0o755, Backlog: 128,
	})
	if errors.Is(err, sockets.ErrLive) {
		return nil, fmt.Errorf("udsvisor is already running: %w", err)
	}
	return l, err
}

// handleSignals stops on SIGTERM/SIGINT and reloads on SIGHUP, until
// shutdown begins; a SIGHUP during shutdown is ignored.
func handleSignals(ctx context.Context, sigc <-chan os.Signal, sup *supervisor.Supervisor, log *zap.Logger, stop func()) {
	for {
		select {
		case <-ctx.Done():
			return
		case sig := <-sigc:
			if sig != unix.SIGHUP {
				log.Info("signal received; stopping", zap.String("signal", sig.String()))
				notify(log, daemon.SdNotifyStopping)
				stop()
				return
			}
			log.Info("SIGHUP received; reloading the config")
			notify(log, daemon.SdNotifyReloading)
			if _, err := sup.Reload(ctx); err != nil {
				var ce config.Errors
				if errors.As(err, &ce) {
					for _, e := range ce {
						log.Error("reload refused: " + e.Error())
					}
				} else {
					log.Error("reload refused", zap.Error(err))
				}
			}
			notify(log, daemon.SdNotifyReady)
		}
	}
}

// notify tells systemd (Type=notify) about udsvisor's state; without
// NOTIFY_SOCKET it does nothing.
func notify(log *zap.Logger, state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		log.Warn("sd_notify", zap.String("state", state), zap.Error(err))
	}
}
