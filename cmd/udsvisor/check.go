// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/config"
	"github.com/udsvisor/udsvisor/internal/idname"
)

func runCheck(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	cfgPath := configFlag(fs)
	quiet := fs.Bool("q", false, "print nothing on success (warnings still go to stderr)")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	// On stderr, as proxy prints its own, so that stdout is the plan.
	for _, warn := range cfg.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", warn)
	}
	if err := upSupported(); err != nil {
		// A pass would let rc.d's start_precmd start an up that exits.
		return fmt.Errorf("%s is valid, but %w", cfg.File, err)
	}
	if !*quiet {
		printPlan(stdout, cfg)
	}
	return nil
}

// printPlan shows what up would create and start, touching nothing.
func printPlan(w io.Writer, cfg *config.Config) {
	nsock := 0
	for _, s := range cfg.Services {
		nsock += len(s.Sockets)
	}
	fmt.Fprintf(w, "%s: ok: %d service(s), %d socket(s)\n", cfg.File, len(cfg.Services), nsock)
	fmt.Fprintf(w, "\ncontrol socket %s\n", cfg.Supervisor.ControlSocket)
	for _, s := range cfg.Services {
		fmt.Fprintf(w, "\nservice %s\n", s.Name)
		fmt.Fprintf(w, "  user      %s (uid %d), group %s (gid %d), supplementary groups: %s\n",
			s.User, s.UID, s.Group, s.GID, groupList(s.Groups))
		fmt.Fprintf(w, "  command   %s\n", quoteArgv(s.Command))
		fmt.Fprintf(w, "  directory %s, umask %04o\n", s.WorkingDir, s.Umask)
		if len(s.Limits) > 0 {
			lims := make([]string, len(s.Limits))
			for i, l := range s.Limits {
				lims[i] = l.String()
			}
			fmt.Fprintf(w, "  limits    %s\n", strings.Join(lims, " "))
		}
		if len(s.AmbientCapNames) > 0 {
			fmt.Fprintf(w, "  ambient capabilities %s\n", strings.Join(s.AmbientCapNames, ", "))
		}
		fmt.Fprintf(w, "  restart   %s; stop with %s, SIGKILL after %s\n",
			s.Restart, unix.SignalName(s.StopSignal), s.StopTimeout)
		if s.Instances > 1 {
			fmt.Fprintf(w, "  instances %d processes on the same sockets (UDSVISOR_INSTANCE=0..%d)\n", s.Instances, s.Instances-1)
		}
		if s.RestartMode == config.RestartOverlap {
			fmt.Fprintf(w, "  restarts  overlap: the new processes start beside the old ones, which stop once the new have started\n")
		}
		if s.Start == config.StartOnDemand {
			idle := "kept running once started"
			if s.IdleStop > 0 {
				idle = "stopped after " + s.IdleStop.String() + " without a connection"
			}
			fmt.Fprintf(w, "  start     on demand: by the first connection; %s\n", idle)
		}
		if s.Ready == config.ReadyNotify {
			watchdog := "no watchdog"
			if s.Watchdog > 0 {
				watchdog = "WATCHDOG=1 every " + s.Watchdog.String()
			}
			fmt.Fprintf(w, "  ready     notify: READY=1 within %s; %s\n", s.StartTimeout, watchdog)
		}
		for _, sock := range s.Sockets {
			fd := sock.FD
			stdin := ""
			if sock.Stdin {
				stdin = " (stdin)"
			}
			if !sock.IsUnix() {
				fmt.Fprintf(w, "  fd %d %-10q tcp  %s%s\n", fd, sock.Name, sock.Addr, stdin)
				continue
			}
			fmt.Fprintf(w, "  fd %d %-10q unix %s  %s:%s %04o (s%s)%s\n", fd, sock.Name, sock.Path,
				sock.OwnerName, sock.GroupName, sock.Mode, sock.Mode.String()[1:], stdin)
			for _, d := range missingDirs(filepath.Dir(sock.Path)) {
				fmt.Fprintf(w, "       creates directory %s  root:%s %04o\n", d, sock.GroupName, sock.DirectoryMode)
			}
		}
	}
}

// missingDirs returns the directories of dir that do not exist yet,
// outermost first.
func missingDirs(dir string) []string {
	var missing []string
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); !errors.Is(err, fs.ErrNotExist) {
			break
		}
		missing = append([]string{d}, missing...)
	}
	return missing
}

func groupList(gids []uint32) string {
	if len(gids) == 0 {
		return "none"
	}
	names := make([]string, len(gids))
	for i, gid := range gids {
		names[i] = strconv.FormatUint(uint64(gid), 10)
		if name := idname.Group(gid); name != names[i] {
			names[i] = fmt.Sprintf("%s (%s)", name, names[i])
		}
	}
	return strings.Join(names, ", ")
}

func quoteArgv(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$") {
			a = strconv.Quote(a)
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}
