// SPDX-License-Identifier: Apache-2.0

//go:build linux

package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// s6 drives s6-svscan on a scan directory of its own (never
// /run/service), with an s6-fdholder-daemon service that holds every
// service's socket, so that sockets outlive processes as under udsvisor.
//
// Launch, all of it inside the start-up figure: s6-svscan starts with
// only the fdholder service; once its socket answers, each service
// socket is bound by s6-ipcserver-socketbinder and stored by
// s6-fdholder-store under the id unix:PATH (as many at a time as there
// are CPUs, as a boot script could); then the service directories are
// linked into the scan directory and `s6-svscanctl -a` makes s6-svscan
// start an s6-supervise for each. Linking them only then matters: a run
// script that finds no socket to retrieve fails, and s6-supervise waits
// a second before trying it again.
type s6 struct {
	base
	ids map[string]string // fd holder id by service name
}

func (s *s6) scan() string    { return filepath.Join(s.dir, "scan") }
func (s *s6) svdir() string   { return filepath.Join(s.dir, "sv") }
func (s *s6) holder() string  { return filepath.Join(s.dir, "fdholder", "s") }
func (s *s6) ruleDir() string { return filepath.Join(s.dir, "fdholder-rules") }

// Prepare writes the fdholder service, its access rules (root may store
// and retrieve unix:... ids; the run scripts retrieve as root, then
// drop to the service user) and one service directory per service.
func (s *s6) Prepare(services []Service) error {
	if err := s.prepared(services, FD0); err != nil {
		return err
	}
	s.ids = map[string]string{}
	if err := socketDirs(services, false); err != nil {
		return fmt.Errorf("s6: %w", err)
	}
	root := filepath.Join(s.ruleDir(), "uid", "0")
	if err := os.MkdirAll(filepath.Join(root, "env"), 0o755); err != nil {
		return fmt.Errorf("s6: %w", err)
	}
	files := map[string]string{
		"allow":                          "",
		"env/S6_FDHOLDER_STORE_REGEX":    "^unix:/\n",
		"env/S6_FDHOLDER_RETRIEVE_REGEX": "^unix:/\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("s6: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(s.holder()), 0o755); err != nil {
		return fmt.Errorf("s6: %w", err)
	}
	// -n: room for every socket (the default is 1,000).
	fdholder := fmt.Sprintf("#!/bin/sh\nexec s6-fdholder-daemon -n %d -i %s %s\n", len(services)+16, s.ruleDir(), s.holder())
	if err := writeRun(filepath.Join(s.scan(), "fdholder"), fdholder); err != nil {
		return fmt.Errorf("s6: %w", err)
	}
	for _, sv := range services {
		cmd := "s6-setuidgid " + User + " " + shellJoin(sv.argv(FD0, s.sleep))
		if sv.Socket != "" {
			s.ids[sv.Name] = "unix:" + sv.Socket
			cmd = "s6-fdholder-retrieve " + s.holder() + " " + shellJoin([]string{s.ids[sv.Name]}) + " " + cmd
		}
		if err := writeRun(filepath.Join(s.svdir(), sv.Name), "#!/bin/sh\nexec "+cmd+"\n"); err != nil {
			return fmt.Errorf("s6: %w", err)
		}
	}
	return nil
}

// Launch starts s6-svscan, stores the sockets, then adds the services.
func (s *s6) Launch(ctx context.Context) error {
	// -c: s6-svscan supervises at most 500 services by default.
	if err := s.spawn("s6-svscan", "-c", strconv.Itoa(len(s.services)+16), s.scan()); err != nil {
		return err
	}
	if err := s.waitHolder(ctx); err != nil {
		return err
	}
	if err := s.storeAll(ctx); err != nil {
		return err
	}
	for _, sv := range s.services {
		if err := os.Symlink(filepath.Join(s.svdir(), sv.Name), filepath.Join(s.scan(), sv.Name)); err != nil {
			return fmt.Errorf("s6: %w", err)
		}
	}
	_, err := run(ctx, "s6-svscanctl", "-a", s.scan())
	return err
}

// waitHolder polls until the fd holder accepts connections.
func (s *s6) waitHolder(ctx context.Context) error {
	for range 5000 { // 10 s
		if c, err := net.Dial("unix", s.holder()); err == nil {
			c.Close()
			return nil
		}
		if err := s.child.Exited(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return fmt.Errorf("s6: the fd holder does not answer on %s: %s", s.holder(), s.child.LogTail(600))
}

// storeAll binds and stores every service socket, a few at a time.
func (s *s6) storeAll(ctx context.Context) error {
	work := make(chan Service)
	errs := make(chan error, len(s.services))
	var wg sync.WaitGroup
	for range max(2, runtime.NumCPU()) {
		wg.Go(func() {
			for sv := range work {
				_, err := run(ctx, "s6-ipcserver-socketbinder", sv.Socket,
					"s6-fdholder-store", s.holder(), s.ids[sv.Name])
				errs <- err
			}
		})
	}
	for _, sv := range s.services {
		if sv.Socket != "" {
			work <- sv
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if err := errors.Join(all...); err != nil {
		return fmt.Errorf("s6: storing the sockets: %w", err)
	}
	return nil
}

// WaitRunning waits for the services' processes.
func (s *s6) WaitRunning(ctx context.Context, timeout time.Duration) (time.Time, error) {
	return s.waitRunning(ctx, timeout, nil)
}

// Pids are s6-svscan, every s6-supervise, and s6-fdholderd.
func (s *s6) Pids() []int { return s.helpers("s6-supervise", "s6-fdholderd") }

// MainPid is `s6-svstat -o pid`, -1 when the service is down.
func (s *s6) MainPid(ctx context.Context, name string) (int, error) {
	out, err := run(ctx, "s6-svstat", "-o", "pid", filepath.Join(s.scan(), name))
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		return 0, fmt.Errorf("s6-svstat: %w", err)
	}
	return max(pid, 0), nil
}

// State is s6-svstat's up or down, with "wanted up" when s6-supervise
// is going to start it again.
func (s *s6) State(ctx context.Context, name string) (string, error) {
	out, err := run(ctx, "s6-svstat", "-o", "up,wantedup", filepath.Join(s.scan(), name))
	if err != nil {
		return "", err
	}
	switch strings.Join(strings.Fields(string(out)), " ") {
	case "true true", "true false":
		return "up", nil
	case "false true":
		return "down, wanted up", nil
	case "false false":
		return "down", nil
	}
	return "", fmt.Errorf("s6-svstat: unexpected %q", out)
}

// Status is the status of every service as an operator gets it with s6
// alone: s6-svstat reads one service directory per run, so one shell
// runs it over all of them (`for d in DIR...; do s6-svstat "$d"; done`),
// timed as one command. The fdholder service is left out: it is part of
// the arrangement, not one of the N services.
func (s *s6) Status(ctx context.Context) error {
	argv := []string{"/bin/sh", "-c", `for d in "$@"; do s6-svstat "$d" || exit; done`, "sh"}
	for _, sv := range s.services {
		argv = append(argv, filepath.Join(s.scan(), sv.Name))
	}
	_, err := run(ctx, argv...)
	return err
}
