// SPDX-License-Identifier: Apache-2.0

//go:build linux

package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/api"
	"github.com/udsvisor/udsvisor/config"
	"github.com/udsvisor/udsvisor/control"
	"github.com/udsvisor/udsvisor/privdrop"
	"github.com/udsvisor/udsvisor/sockets"
	"github.com/udsvisor/udsvisor/supervisor"
)

// Upgrading in place (ctl upgrade, SIGUSR2): udsvisor re-executes the
// binary now on disk in the same process, so that its children stay its
// children and keep their parent-death signal (SECURITY-NOTES 0.3), and
// their sockets stay open. In order:
//
//  1. The config file must still hold the config that runs (a reload
//     first, else), and the binary must be root's and writable by no one
//     else.
//  2. The new binary is run once, apart (upgradeCheckArg): it must load
//     the same config and know the state's format. A binary that does
//     not start, crashes or says no is refused here; nothing changed.
//  3. The control API stops; the supervisor comes to a standstill
//     (supervisor.Handover) and its state and fds go through the exec
//     (handover.go) from the main thread that forked every child.
//  4. The new binary checks the state and takes it over. If it cannot,
//     it executes the old binary again (goBack), which takes it up; its
//     API then reports the refusal.

// upgradeCheckArg runs the probe of step 2; hidden, like the launch
// helper's argument.
const upgradeCheckArg = "__udsvisor_upgrade_check"

// upgradeCheckOK starts the probe's answer when it can take over.
const upgradeCheckOK = "udsvisor can take over: format "

// Bounds of the steps.
const (
	probeTimeout    = 30 * time.Second
	handoverTimeout = 30 * time.Second
)

// upgrader carries out upgrades of one running udsvisor.
type upgrader struct {
	log     *zap.Logger
	cfgPath string
	// exePath is the binary on disk: the path udsvisor was started
	// from, where a package manager puts the next version.
	exePath string
	// self is an O_PATH fd of the running binary, the way back for a
	// new binary that refuses to take over.
	self *os.File
	ln   *privdrop.Launcher
	sup  *supervisor.Supervisor
	ctl  *controlServing

	// sigc receives udsvisor's signals (handleSignals).
	sigc chan<- os.Signal
	// commits takes the checked binary to the goroutine that hands over.
	commits chan checked
	// busy is held from Upgrade's check until the upgrade has failed
	// (or the process is replaced).
	busy sync.Mutex

	mu sync.Mutex
	// status is what GET /v1/upgrade answers; guarded by mu.
	status api.Upgrade
}

// checked is a binary that passed the checks, and the config it loaded.
type checked struct {
	bin    *os.File
	config []byte
}

// Upgrade checks the binary on disk and, if it can take over, hands it
// to run, which executes it once this request has been answered.
func (u *upgrader) Upgrade(ctx context.Context) (api.Upgrade, error) {
	if !u.busy.TryLock() {
		return u.UpgradeStatus(), fmt.Errorf("an upgrade is already under way: %w", supervisor.ErrUpgrading)
	}
	before := u.UpgradeStatus()
	c, err := u.check(ctx)
	if err != nil {
		u.failed(err)
		u.busy.Unlock()
		return before, fmt.Errorf("%w: %v; nothing was changed", control.ErrUpgradeRefused, err)
	}
	u.log.Info("upgrade: the new binary can take over", zap.String("binary", u.exePath))
	u.commits <- c
	return before, nil
}

// UpgradeStatus implements control.Upgrader.
func (u *upgrader) UpgradeStatus() api.Upgrade {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.status
}

func (u *upgrader) failed(err error) {
	u.log.Error("upgrade failed; udsvisor goes on as it was", zap.Error(err))
	u.mu.Lock()
	defer u.mu.Unlock()
	u.status.LastError, u.status.LastErrorAt = err.Error(), time.Now()
}

// check is steps 1 and 2; it returns the new binary, open.
func (u *upgrader) check(ctx context.Context) (checked, error) {
	running := u.sup.ConfigSHA256()
	data, err := os.ReadFile(u.cfgPath)
	if err != nil {
		return checked{}, err
	}
	if sha256.Sum256(data) != running {
		return checked{}, fmt.Errorf("%s changed since it was loaded; reload it first (udsvisor ctl reload)", u.cfgPath)
	}
	// The new binary would take them over under the file's definition,
	// the one that did not start.
	if stale := u.sup.Stale(); len(stale) > 0 {
		return checked{}, fmt.Errorf("%s still run the definition from before the last reload, whose new one in %s did not start; fix it and reload first",
			strings.Join(stale, ", "), u.cfgPath)
	}
	bin, err := os.Open(u.exePath)
	if err != nil {
		return checked{}, err
	}
	if err := checkBinary(bin); err != nil {
		bin.Close()
		return checked{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	out, ex, err := u.sup.Probe(ctx, bin, []string{u.exePath, upgradeCheckArg, u.cfgPath, hex.EncodeToString(running[:])})
	said := strings.TrimSpace(api.Printable(string(out)))
	if err == nil && (!ex.Status.Exited() || ex.Status.ExitStatus() != 0) {
		err = fmt.Errorf("%s %s", u.exePath, ex)
	}
	if err == nil && !strings.HasPrefix(said, upgradeCheckOK+strconv.Itoa(handoverFormat)) {
		err = fmt.Errorf("%s does not take over format %d", u.exePath, handoverFormat)
	}
	if err != nil {
		bin.Close()
		if said != "" {
			err = fmt.Errorf("%w: %s", err, said)
		}
		return checked{}, fmt.Errorf("the new binary cannot take over: %w", err)
	}
	return checked{bin: bin, config: data}, nil
}

// checkBinary refuses a binary that anyone but root could have written:
// it is about to run as root with every service's sockets (T29).
func checkBinary(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	st, _ := fi.Sys().(*unix.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file", f.Name())
	case st != nil && st.Uid != 0:
		return fmt.Errorf("%s is owned by uid %d, not root; refusing", f.Name(), st.Uid)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%s is writable by group or others; refusing", f.Name())
	case fi.Mode().Perm()&0o100 == 0:
		return fmt.Errorf("%s is not executable", f.Name())
	}
	return nil
}

// run hands over to each checked binary until ctx is done. An upgrade
// that succeeds never returns here.
func (u *upgrader) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-u.commits:
			err := u.handOver(ctx, c)
			c.bin.Close()
			u.failed(err)
			u.busy.Unlock()
		}
	}
}

// handOver is steps 3 and 4: it returns only if the exec did not happen,
// with the supervisor and the control API going on.
func (u *upgrader) handOver(ctx context.Context, c checked) error {
	u.ctl.stop()
	defer u.ctl.start()
	hctx, cancel := context.WithTimeout(ctx, handoverTimeout)
	defer cancel()
	h, err := u.sup.Handover(hctx, fdFirst)
	if err != nil {
		return err
	}
	defer h.Thaw()
	fds := append([]int{int(u.self.Fd()), int(c.bin.Fd())}, h.FDs...)
	add := func(fd int) int {
		fds = append(fds, fd)
		return len(fds) - 1
	}
	st := u.UpgradeStatus()
	running := u.sup.ConfigSHA256()
	hs := &handoverState{
		Format: handoverFormat, Pid: os.Getpid(), Version: version, ConfigSHA256: hex.EncodeToString(running[:]),
		Config: c.config, Upgrades: st.Upgrades, LastError: st.LastError, Supervisor: &h.Saved,
	}
	if hs.Control, err = u.ctl.ctl.Save(add); err != nil {
		return err
	}
	if u.ctl.root != nil {
		rs, err := u.ctl.root.Save(add)
		if err != nil {
			return err
		}
		hs.RootControl = &rs
	}
	b, err := encodeState(hs)
	if err != nil {
		return err
	}
	// Should the new binary refuse, this one takes the state back: it
	// must accept it, or the way back would end every service.
	if err := u.takesBack(b); err != nil {
		return fmt.Errorf("this binary would not take its own state back: %w", err)
	}
	mem, err := writeState(b)
	if err != nil {
		return err
	}
	defer mem.Close()
	fds = append(fds, int(mem.Fd()))
	if ctx.Err() != nil {
		return supervisor.ErrShuttingDown // a stop came meanwhile: it wins
	}
	u.log.Info("upgrade: executing the new binary", zap.String("binary", u.exePath), zap.Int("fds", len(fds)))
	notify(u.log, daemon.SdNotifyReloading)
	defer notify(u.log, daemon.SdNotifyReady)
	// From the exec until the new binary catches them, a SIGHUP or
	// SIGUSR2 would end udsvisor and its services: ignored, which the
	// exec keeps, they are lost instead. (A SIGTERM still ends it.)
	signal.Ignore(unix.SIGHUP, unix.SIGUSR2)
	defer signal.Notify(u.sigc, unix.SIGHUP, unix.SIGUSR2)
	return u.ln.Exec(fdNewExe, os.Args, os.Environ(), fds)
}

// takesBack runs on the state b the checks that need neither its fds nor
// its processes, as this binary would on its way back.
func (u *upgrader) takesBack(b []byte) error {
	hs, err := decodeState(b)
	if err != nil {
		return err
	}
	cfg, err := config.Parse(u.cfgPath, hs.Config)
	if err != nil {
		return err
	}
	return supervisor.CheckSaved(cfg, hs.Supervisor)
}

// runUpgradeCheck is the probe (step 2), run by the old udsvisor as
// NEW __udsvisor_upgrade_check CONFIG SHA256: it loads the config as up
// would and says whether it is the one that runs and the format this
// binary takes.
func runUpgradeCheck(args []string, stdout io.Writer) error {
	if len(args) != 2 {
		return usageError{errors.New(upgradeCheckArg + " CONFIG SHA256")}
	}
	cfg, err := config.Load(args[0])
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(cfg.SHA256[:]); got != args[1] {
		return fmt.Errorf("%s is not the config that runs", args[0])
	}
	fmt.Fprintf(stdout, "%s%d (udsvisor %s)\n", upgradeCheckOK, handoverFormat, version)
	return nil
}

// adopted is what a new binary took over from the state.
type adopted struct {
	sup       *supervisor.Supervisor
	ctl, root *sockets.Listener
	status    api.Upgrade
	from      string // the version that handed over
}

// adopt takes over the state the old binary passed in fds (step 4). On
// error nothing has changed; the caller goes back (goBack).
func adopt(fds []int, hs *handoverState, cfg *config.Config, opts supervisor.Options, log *zap.Logger) (*adopted, error) {
	var err error
	t := &taker{fds: fds, taken: make(map[int]bool)}
	a := &adopted{status: api.Upgrade{Upgrades: hs.Upgrades, LastError: hs.LastError}}
	if a.sup, err = supervisor.Adopt(cfg, log, opts, hs.Supervisor, t.take); err != nil {
		return nil, err
	}
	if a.ctl, err = sockets.Adopt(hs.Control, t.take); err != nil {
		return nil, err
	}
	if a.ctl.Spec().Path != cfg.Supervisor.ControlSocket {
		return nil, fmt.Errorf("control socket %s, config says %s", a.ctl.Spec().Path, cfg.Supervisor.ControlSocket)
	}
	if hs.RootControl != nil {
		if a.root, err = sockets.Adopt(*hs.RootControl, t.take); err != nil {
			return nil, err
		}
	}
	t.closeRest()
	a.from = hs.Version
	return a, nil
}
