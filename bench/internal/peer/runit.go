// SPDX-License-Identifier: Apache-2.0

//go:build linux

package peer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// runit drives runsvdir on a scan directory of its own (never
// /etc/service): one runsv per service, whose run script drops to the
// service user with chpst and execs the program, which binds its own
// socket.
type runit struct{ base }

func (r *runit) scan() string { return filepath.Join(r.dir, "service") }

// maxRunit is runsvdir's compiled-in limit: it starts no runsv past
// 1000 services ("too many services").
const maxRunit = 1000

// Prepare writes one service directory with its run script per service.
func (r *runit) Prepare(services []Service) error {
	if len(services) > maxRunit {
		return fmt.Errorf("runit: runsvdir supervises at most %d services, not %d", maxRunit, len(services))
	}
	if err := r.prepared(services, Bind); err != nil {
		return err
	}
	if err := os.MkdirAll(r.scan(), 0o755); err != nil {
		return fmt.Errorf("runit: %w", err)
	}
	if err := socketDirs(services, true); err != nil {
		return fmt.Errorf("runit: %w", err)
	}
	for _, s := range services {
		script := "#!/bin/sh\nexec chpst -u " + User + " " + shellJoin(s.argv(Bind, r.sleep)) + "\n"
		if err := writeRun(filepath.Join(r.scan(), s.Name), script); err != nil {
			return fmt.Errorf("runit: %w", err)
		}
	}
	// runsvdir leaves a scan directory changed within the current second
	// for its next look, a second later. On a real machine the directory
	// was written long before runsvdir starts, so it is dated back here:
	// the start-up figure is runit's, not that second's.
	old := time.Now().Add(-10 * time.Second)
	if err := os.Chtimes(r.scan(), old, old); err != nil {
		return fmt.Errorf("runit: %w", err)
	}
	return nil
}

// writeRun makes a service directory holding an executable run script.
func writeRun(dir, script string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "run"), []byte(script), 0o755)
}

// shellJoin quotes argv for /bin/sh.
func shellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// Launch starts runsvdir, which starts a runsv for each directory.
func (r *runit) Launch(context.Context) error {
	return r.spawn("runsvdir", r.scan())
}

// WaitRunning waits for the services' processes.
func (r *runit) WaitRunning(ctx context.Context, timeout time.Duration) (time.Time, error) {
	return r.waitRunning(ctx, timeout, nil)
}

// Pids are runsvdir and every runsv.
func (r *runit) Pids() []int { return r.helpers("runsv") }

// MainPid reads supervise/pid, which runsv keeps for the service's
// current process (empty when none runs).
func (r *runit) MainPid(_ context.Context, name string) (int, error) {
	b, err := os.ReadFile(filepath.Join(r.scan(), name, "supervise", "pid"))
	if err != nil {
		return 0, fmt.Errorf("runit: %w", err)
	}
	if s := strings.TrimSpace(string(b)); s != "" {
		return strconv.Atoi(s)
	}
	return 0, nil
}

// State is the first word of `sv status` (run, down, finish), with
// "want up" when runsv is going to start it again.
func (r *runit) State(ctx context.Context, name string) (string, error) {
	out, err := run(ctx, "sv", "status", filepath.Join(r.scan(), name))
	if err != nil {
		return "", err
	}
	line := strings.TrimSpace(string(out))
	state, _, _ := strings.Cut(line, ":")
	if state != "run" && strings.Contains(line, "want up") {
		state += ", want up"
	}
	return state, nil
}

// Status runs `sv status` on every service directory at once.
func (r *runit) Status(ctx context.Context) error {
	argv := []string{"sv", "status"}
	for _, s := range r.services {
		argv = append(argv, filepath.Join(r.scan(), s.Name))
	}
	_, err := run(ctx, argv...)
	return err
}
