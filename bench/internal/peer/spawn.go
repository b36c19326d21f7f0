// SPDX-License-Identifier: Apache-2.0

//go:build linux

package peer

import (
	"os/exec"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/bench/internal/proc"
)

var nofile sync.Once

// Spawn starts argv with env (nil: the benchmark's own) and its output in
// the file logPath, as proc.Start does; the first Spawn also raises the
// benchmark's limit of open files (see raiseNofile). End it with Kill.
func Spawn(logPath string, env []string, argv ...string) (*proc.Child, error) {
	nofile.Do(raiseNofile)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	return proc.Start(filepath.Base(argv[0]), logPath, cmd)
}

// raiseNofile sets the benchmark's soft limit of open files to its hard
// limit, which every supervisor then inherits: at 1,000 services each
// needs thousands of fds (sockets, pipes, log files), and a service
// manager would be configured so; Debian's default soft limit is 1024.
// (Go raises its own soft limit at start but gives children the
// original one, unless the program sets the limit itself, as here.)
func raiseNofile() {
	var l unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &l)
	}
}
