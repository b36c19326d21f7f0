// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/config"
)

// maxProbeOutput bounds what Probe keeps of a command's output.
const maxProbeOutput = 64 << 10

// Probe runs the program open as exe with args as root, apart from every
// service (a new session, stdin on /dev/null, the environment only PATH),
// and returns what it wrote on stdout and stderr (at most 64 KiB) and how
// it ended. The program is the file exe, whatever its path names now; it
// runs as /proc/self/fd/3, its fd 3, so that a script can read itself.
// When ctx is done first, its process group is killed. The reaper waits
// for it like for any child, so Probe is for a running Supervisor only;
// an upgrade runs the new binary this way before trusting it.
func (s *Supervisor) Probe(ctx context.Context, exe *os.File, args []string) ([]byte, Exit, error) {
	const path = "/proc/self/fd/3"
	r, w, err := os.Pipe()
	if err != nil {
		return nil, Exit{}, err
	}
	defer r.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		w.Close()
		return nil, Exit{}, err
	}
	defer devnull.Close()
	exited := make(chan Exit, 1) // the reaper never waits for us
	pid, err := s.reaper.start(func() (int, error) {
		return syscall.ForkExec(path, args, &syscall.ProcAttr{
			Env:   []string{"PATH=" + config.DefaultPath},
			Files: []uintptr{devnull.Fd(), w.Fd(), w.Fd(), exe.Fd()},
			Sys:   &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL},
		})
	}, func(ex Exit) { exited <- ex })
	w.Close()
	if err != nil {
		return nil, Exit{}, &os.PathError{Op: "fork/exec", Path: exe.Name(), Err: err}
	}
	var out bytes.Buffer
	read := make(chan struct{})
	go func() {
		defer close(read)
		io.Copy(&out, io.LimitReader(r, maxProbeOutput))
		io.Copy(io.Discard, r)
	}()
	var ex Exit
	select {
	case ex = <-exited:
	case <-ctx.Done():
		s.reaper.signal(pid, unix.SIGKILL)
		ex = <-exited
		err = fmt.Errorf("%s: killed: %w", exe.Name(), ctx.Err())
	}
	// The reaper killed the process group; a process that escaped it
	// could still hold the pipe.
	r.SetReadDeadline(time.Now().Add(time.Second))
	<-read
	return out.Bytes(), ex, err
}
