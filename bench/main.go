// SPDX-License-Identifier: Apache-2.0

//go:build linux

// Command bench measures udsvisor against the supervisors operators would
// pick instead (supervisord, s6 with s6-fdholder, runit) on the same work,
// on this machine, in one run, and prints one table: the median of each
// figure, its min–max, and each peer's ratio to udsvisor.
//
//	go run ./bench             # the whole run, under 10 minutes
//	go run ./bench -quick      # a smoke run at tiny sizes
//
// It must run as root (it starts services as other users and binds
// sockets under /run). It installs nothing: it says which peers it found
// and prints the apt-get line for the others, which it leaves out. It
// uses only loopback and Unix sockets, bounds every loop in count and
// time, and removes every process and directory it made.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/udsvisor/udsvisor/bench/internal/proxypath"
	"github.com/udsvisor/udsvisor/bench/internal/report"
	"github.com/udsvisor/udsvisor/bench/internal/restartmode"
	"github.com/udsvisor/udsvisor/bench/internal/scale"
	"github.com/udsvisor/udsvisor/bench/internal/storm"
)

// peerPrograms are the programs each peer needs, and its Debian package.
var peerPrograms = []struct {
	name, pkg string
	progs     []string
}{
	{report.Supervisord, "supervisor", []string{"supervisord", "supervisorctl"}},
	{report.S6, "s6", []string{"s6-svscan", "s6-svc", "s6-svstat", "s6-fdholder-daemon", "s6-fdholder-retrieve"}},
	{report.Runit, "runit", []string{"runsvdir", "runsv", "sv"}},
}

// tools are what the figures themselves drive.
var tools = []struct{ prog, pkg string }{
	{"nginx", "nginx"}, {"wrk", "wrk"},
}

func main() {
	os.Exit(run())
}

func run() int {
	quick := flag.Bool("quick", false, "a smoke run: tiny sizes and short loops")
	sizes := flag.String("sizes", "10,100,1000", "service counts for the scale figures")
	only := flag.String("peers", "", "comma-separated subset of supervisord,s6,runit (default: every one found)")
	parts := flag.String("parts", "storm,scale,proxypath,restartmode", "which parts to run, in order")
	flag.Parse()

	if os.Getuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench: run as root: services run as other users and sockets go under /run")
		return 1
	}
	env := &report.Env{Quick: *quick, Log: os.Stderr}
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bench: -sizes: %q is not a service count\n", f)
			return 2
		}
		env.Sizes = append(env.Sizes, n)
	}
	if *quick && *sizes == "10,100,1000" {
		env.Sizes = []int{2, 10}
	}

	env.Peers = []string{report.Udsvisor}
	var missing []string
	for _, p := range peerPrograms {
		if *only != "" && !strings.Contains(","+*only+",", ","+p.name+",") {
			continue
		}
		if lacks := lookAll(p.progs); lacks != "" {
			env.Logf("%s: not found (%s missing); left out", p.name, lacks)
			missing = append(missing, p.pkg)
			continue
		}
		env.Peers = append(env.Peers, p.name)
		env.Logf("%s: found", p.name)
	}
	for _, t := range tools {
		if _, err := exec.LookPath(t.prog); err != nil {
			env.Logf("%s: not found; the figures that need it are left out", t.prog)
			missing = append(missing, t.pkg)
		}
	}
	if len(missing) > 0 {
		env.Logf("to measure everything: apt-get install %s", strings.Join(missing, " "))
	}

	dir, err := os.MkdirTemp("/run", "udsvisor-bench-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	env.Dir = dir
	if err := build(env); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}

	// Ctrl-C ends the parts early; each cleans up what it started.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var figs []report.Figure
	for _, part := range strings.Split(*parts, ",") {
		var fs []report.Figure
		var err error
		switch part {
		case "scale":
			fs, err = scale.Run(ctx, env)
		case "storm":
			fs, err = storm.Run(ctx, env)
		case "proxypath":
			fs, err = proxypath.Run(ctx, env)
		case "restartmode":
			fs, err = restartmode.Run(ctx, env)
		default:
			fmt.Fprintf(os.Stderr, "bench: -parts: unknown part %q\n", part)
			return 2
		}
		figs = append(figs, fs...)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", part, err)
			return 1
		}
	}
	if err := report.Print(os.Stdout, env.Peers, figs); err != nil {
		return 1
	}
	return 0
}

// lookAll returns the first program of progs not in PATH, or "".
func lookAll(progs []string) string {
	for _, p := range progs {
		if _, err := exec.LookPath(p); err != nil {
			return p
		}
	}
	return ""
}

// build compiles udsvisor and the backend from this tree into env.Dir,
// which every user can read, so that services may exec them.
func build(env *report.Env) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	env.Udsvisor = filepath.Join(env.Dir, "udsvisor")
	env.Backend = filepath.Join(env.Dir, "backend")
	env.TestApp = filepath.Join(env.Dir, "testapp")
	for out, pkg := range map[string]string{env.Udsvisor: "./cmd/udsvisor", env.Backend: "./bench/backend",
		env.TestApp: "./integration/testapp"} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = root
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build %s: %w", pkg, err)
		}
	}
	env.Logf("built %s, %s and %s", env.Udsvisor, env.Backend, env.TestApp)
	return nil
}

// moduleRoot is the directory of go.mod, wherever bench is run from.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run bench from inside the udsvisor module")
	}
	return filepath.Dir(mod), nil
}
