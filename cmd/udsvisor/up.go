// SPDX-License-Identifier: Apache-2.0

//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/api"
	"github.com/udsvisor/udsvisor/config"
	"github.com/udsvisor/udsvisor/control"
	"github.com/udsvisor/udsvisor/privdrop"
	"github.com/udsvisor/udsvisor/sockets"
	"github.com/udsvisor/udsvisor/supervisor"
)

// upSupported is nil: up runs on Linux (see up_other.go).
func upSupported() error { return nil }

func runUp(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	cfgPath := configFlag(fs)
	levelName := fs.String("log-level", "info", "log this level and above: debug, info, warn or error")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	level, err := zapcore.ParseLevel(*levelName)
	if err != nil || level > zapcore.ErrorLevel {
		return usageError{fmt.Errorf("-log-level %q: want debug, info, warn or error", *levelName)}
	}
	// Notify, never Ignore: an ignored signal stays ignored in children.
	// The channel holds one signal per kind that matters. There is no
	// signal.Stop: it would restore the default action, under which a
	// SIGHUP or a second SIGTERM in the last moments of the shutdown
	// would kill udsvisor instead of letting it exit 0. Once the
	// shutdown begins, nothing reads the channel and further signals are
	// dropped. It comes as early as can be: until then these signals
	// would end udsvisor, and after an upgrade's exec its services with
	// it; one that comes during start-up waits in the channel.
	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGUSR2)
	// Once, before any thread can create a file: every socket is born
	// 0600 or stricter and widened with chmod afterwards. The umask is
	// shared by all threads, so it is never toggled around a bind.
	unix.Umask(0o077)
	// An upgrade passes the services' fds and its state (handover.go);
	// a new binary that refused them passes them back with its reason.
	inherited, err := privdrop.ExecFDs()
	if err != nil {
		return err
	}
	refused, returning := os.LookupEnv(refusedEnv)
	os.Unsetenv(refusedEnv)
	// fds inherited from whoever started udsvisor would leak into every
	// child through os/exec (golang/go#37857).
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fmt.Errorf("close_range: %w", err)
	}
	back := func(err error) error {
		if inherited == nil {
			return err
		}
		return goBack(inherited, err, returning)
	}

	// After an upgrade the config is the one that ran, from the state,
	// whatever the file holds now.
	var hs *handoverState
	var cfg *config.Config
	if inherited != nil {
		if hs, err = readState(inherited); err == nil {
			cfg, err = config.Parse(*cfgPath, hs.Config)
		}
	} else {
		cfg, err = config.Load(*cfgPath)
	}
	if err != nil {
		return back(err)
	}
	log := newLogger(cfg.Supervisor.LogFormat, level)
	defer log.Sync()
	for _, w := range cfg.Warnings {
		log.Warn("config warning", zap.String("problem", w.Error()))
	}
	// Said once; not kept for the life of the process.
	cfg.Warnings = nil

	// Every child is forked from the main thread, the one thread that
	// survives an upgrade's exec.
	ln, err := privdrop.NewMainLauncher()
	if err != nil {
		return back(err)
	}
	u := &up{cfg: cfg, log: log, cfgPath: *cfgPath, ln: ln, sigc: sigc}
	if err := u.openSelf(); err != nil {
		return back(err)
	}
	opts := supervisor.Options{ReapOrphans: true, Reconfigure: u.reconfigure, Launcher: ln, Binary: u.exePath}
	if inherited != nil {
		// Nothing the adoption wraps may be closed by a finalizer
		// before goBack hands it back.
		gc := debug.SetGCPercent(-1)
		a, err := adopt(inherited, hs, cfg, opts, log)
		if err != nil {
			log.Error("upgrade: this binary cannot take over; going back to the old one", zap.Error(err))
			return goBack(inherited, err, returning)
		}
		debug.SetGCPercent(gc)
		u.adopted = a
		u.status = a.status
		if returning {
			u.status.LastError, u.status.LastErrorAt = "the new binary refused to take over: "+refused, time.Now()
			log.Error("upgrade failed: the new binary refused to take over; this one took its services back",
				zap.String("reason", refused))
		} else {
			u.status.Upgrades++
			log.Info("upgrade: took over", zap.String("from", a.from), zap.String("to", version),
				zap.Int("services", len(cfg.Services)))
		}
	}
	u.status.Version, u.status.Pid = version, os.Getpid()

	var runErr error
	done := make(chan struct{})
	started := func() {
		go func() {
			defer close(done)
			runErr = u.run(opts)
			ln.Close()
		}()
	}
	if err := ln.ServeMain(inherited, started); err != nil {
		return fmt.Errorf("start the launcher: %w", err)
	}
	<-done
	return runErr
}

// up is one run of udsvisor up.
type up struct {
	cfg     *config.Config
	log     *zap.Logger
	cfgPath string
	ln      *privdrop.Launcher
	self    *os.File // O_PATH of the running binary
	exePath string
	adopted *adopted // what an upgrade handed over, nil on a fresh start
	status  api.Upgrade
	sigc    chan os.Signal

	// set by run before the supervisor can reload
	ctl *sockets.Listener
	srv *control.Server
}

// openSelf keeps the running binary at hand for an upgrade's way back,
// and notes where it lies on disk, where its next version will be.
func (u *up) openSelf() error {
	fd, err := unix.Open("/proc/self/exe", unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: "/proc/self/exe", Err: err}
	}
	u.self = os.NewFile(uintptr(fd), "/proc/self/exe")
	u.exePath, err = exePath()
	return err
}

// exePath is the path udsvisor was started by, where the next version
// will be installed: a symlink that a package switches to a new target
// stays a symlink (os.Executable would name the old target). Only a
// command found on PATH, or run through /proc, needs os.Executable.
func exePath() (string, error) {
	arg0 := os.Args[0]
	if !strings.ContainsRune(arg0, '/') || strings.HasPrefix(arg0, "/proc/") {
		return os.Executable()
	}
	return filepath.Abs(arg0)
}

func (u *up) reconfigure(old, new config.Supervisor) error {
	return applySupervisor(old, new, u.ctl, u.srv, u.log)
}

// run binds (or takes over) the control sockets and supervises the
// services until a stop signal.
func (u *up) run(opts supervisor.Options) error {
	cfg, log := u.cfg, u.log
	var rootCtl *sockets.Listener
	if a := u.adopted; a != nil {
		u.ctl, rootCtl = a.ctl, a.root
	} else {
		// The control socket comes first: while another udsvisor
		// answers on it, this one must touch nothing, not even a stale
		// service socket.
		ctl, err := bindControl(cfg.Supervisor)
		if err != nil {
			return err
		}
		u.ctl = ctl
		if rootCtl, err = bindRootControl(cfg.Supervisor, log); err != nil {
			ctl.Close()
			return err
		}
	}
	defer u.ctl.Close()
	if rootCtl != nil {
		defer rootCtl.Close()
	}

	// Grandchildren that escape their service's process group are
	// reparented to udsvisor rather than to PID 1, so that they are
	// reaped here.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		log.Warn("cannot become a subreaper; escaped grandchildren go to PID 1", zap.Error(err))
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	sup := supervisor.New(cfg, log, opts)
	if u.adopted != nil {
		sup = u.adopted.sup
	}
	upg := &upgrader{log: log, cfgPath: u.cfgPath, exePath: u.exePath, self: u.self, ln: u.ln, sup: sup,
		commits: make(chan checked, 1), status: u.status, sigc: u.sigc}
	maxConns := controlConnLimit(cfg, log)
	u.srv = control.New(sup, control.Options{
		ControlGID: cfg.Supervisor.ControlGroup, StatusGID: cfg.Supervisor.StatusGroup, Log: log,
		// One user must not fill a cap lowered by the fd budget, which
		// would lock root out (T18).
		MaxConns: maxConns, MaxConnsPerUID: min(control.DefaultMaxConnsPerUID, max(1, maxConns/4)),
		MaxRootConns: min(control.DefaultMaxRootConns, maxConns),
		Version:      version, Upgrader: upg,
	})
	upg.ctl = &controlServing{srv: u.srv, ctl: u.ctl, root: rootCtl, log: log, ctx: ctx}
	upg.ctl.start()
	go upg.run(ctx)

	go handleSignals(ctx, u.sigc, sup, upg, log, cancel)
	ready := func() { notify(log, daemon.SdNotifyReady) }
	runErr := sup.Run(ctx, ready)
	cancel()
	if err := upg.ctl.stop(); err != nil {
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

// bindRootControl creates the root-only control socket next to the
// control socket, which no flood of the control socket reaches (T28). A
// control socket path too long for its name costs root only that
// reserved way in: the warning is logged and the Listener is nil.
func bindRootControl(c config.Supervisor, log *zap.Logger) (*sockets.Listener, error) {
	l, err := control.BindRoot(c.ControlSocket)
	if errors.Is(err, control.ErrNoRoomForRootSocket) {
		log.Warn("no root-only control socket; root's ctl shares the control socket with everyone", zap.Error(err))
		return nil, nil
	}
	return l, err
}

// applySupervisor applies a reloaded [supervisor] table: the control
// socket is re-owned in place and requests are authorised by the new
// groups from now on (T27). What needs a restart (the control socket's
// path, the log format) refuses the reload before anything changes.
func applySupervisor(old, new config.Supervisor, ctl *sockets.Listener, srv *control.Server, log *zap.Logger) error {
	restart := func(key, was, now string) error {
		return fmt.Errorf("[supervisor] %s changed from %q to %q, which takes a restart of udsvisor; nothing was changed", key, was, now)
	}
	switch {
	case new.ControlSocket != old.ControlSocket:
		return restart("control_socket", old.ControlSocket, new.ControlSocket)
	case new.LogFormat != old.LogFormat:
		return restart("log_format", old.LogFormat, new.LogFormat)
	}
	if new.ControlGroup != old.ControlGroup || new.ControlMode != old.ControlMode {
		if err := ctl.SetOwner(0, max(new.ControlGroup, 0), new.ControlMode); err != nil {
			return fmt.Errorf("[supervisor]: %w; nothing was changed", err)
		}
	}
	srv.SetGroups(new.ControlGroup, new.StatusGroup)
	log.Info("reload: [supervisor] applied", zap.Int("control_group", new.ControlGroup),
		zap.Int("status_group", new.StatusGroup), zap.String("control_mode", fmt.Sprintf("%04o", new.ControlMode)))
	return nil
}

// handleSignals stops on SIGTERM/SIGINT, reloads on SIGHUP and upgrades
// on SIGUSR2, until shutdown begins; a SIGHUP during shutdown is ignored.
func handleSignals(ctx context.Context, sigc <-chan os.Signal, sup *supervisor.Supervisor, upg *upgrader, log *zap.Logger, stop func()) {
	startUpgrade := func() {
		log.Info("SIGUSR2 received; upgrading in place")
		go upg.Upgrade(ctx) // its failure is logged
	}
	for {
		select {
		case <-ctx.Done():
			return
		case sig := <-sigc:
			if sig == unix.SIGUSR2 {
				startUpgrade()
				continue
			}
			// A SIGUSR2 queued behind the SIGHUP upgrades after the
			// reload: the kernel hands over SIGHUP first, whichever came
			// first, and an upgrade needs the running config to be the
			// file's (the operator who edits, HUPs and USR2s means both).
			upgrade := false
			if sig == unix.SIGHUP {
				sig, upgrade = pendingStop(sigc)
			}
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
						log.Error("reload refused", zap.String("problem", e.Error()))
					}
				} else {
					log.Error("reload refused", zap.Error(err))
				}
			}
			notify(log, daemon.SdNotifyReady)
			if upgrade {
				startUpgrade()
			}
		}
	}
}

// pendingStop returns the SIGTERM or SIGINT among the signals already
// queued behind a SIGHUP, or SIGHUP if there is none, and whether a
// SIGUSR2 was among them. The kernel delivers pending signals lowest
// number first, so a SIGTERM sent just before a SIGHUP arrives after it;
// the stop must win, rather than a reload that the stop would undo at
// once. A SIGUSR2 taken from the queue is not lost: the caller upgrades.
func pendingStop(sigc <-chan os.Signal) (os.Signal, bool) {
	upgrade := false
	for {
		select {
		case sig := <-sigc:
			switch sig {
			case unix.SIGHUP:
			case unix.SIGUSR2:
				upgrade = true
			default:
				return sig, upgrade
			}
		default:
			return unix.SIGHUP, upgrade
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

// fdsControl are the fds of the control server itself: its sockets, their
// directories and the listeners' poller; connections come on top.
const fdsControl = 8

// minControlConns keeps the control API usable even under a limit too low
// for the config.
const minControlConns = 4

// controlConnLimit caps the control API's concurrent connections so that
// idle clients cannot take the fds a restart needs: at RLIMIT_NOFILE a
// crashed service could not be restarted (pipe2 fails with EMFILE) until
// they left. Connections get half of what the services leave, at most
// control.DefaultMaxConns; further clients wait in the kernel backlog.
// The budget is computed for the services at start-up; the Go runtime has
// already raised the soft limit to the hard one.
func controlConnLimit(cfg *config.Config, log *zap.Logger) int {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("getrlimit NOFILE; control connections keep their default cap", zap.Error(err))
		return control.DefaultMaxConns
	}
	need := fdsControl + supervisor.FDsNeeded(cfg)
	conns := uint64(0)
	if lim.Cur > need {
		conns = min((lim.Cur-need)/2, control.DefaultMaxConns)
	}
	if conns < minControlConns {
		log.Warn("the open files limit is low for this config; raise it (ulimit -n, LimitNOFILE=)",
			zap.Uint64("nofile", lim.Cur), zap.Uint64("needed", need), zap.Int("control_connections", minControlConns))
		return minControlConns
	}
	return int(conns)
}
