// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// A process that ignores LISTEN_FDS often binds a socket of its own
// instead (Puma falls back to 0.0.0.0:9292): the accidental exposure
// udsvisor exists to prevent. Once a process has started, its open fds
// are compared with the listening sockets of its network namespace, and
// each one it listens on that udsvisor did not give it is logged once.

// ownRecheck is when the listeners are looked at a second time: an app
// may bind its fallback port a while after it has counted as started.
const ownRecheck = 5 * time.Second

// warnOwnListeners checks pid's listening sockets now and once more after
// ownRecheck, on a goroutine of its own (it reads /proc), and logs a
// warning naming each that is not one of inherited, the socket inodes of
// the listeners the process was started with.
func warnOwnListeners(log svcLog, pid int, inherited map[uint64]bool) {
	var mu sync.Mutex
	warned := make(map[string]bool)
	check := func() {
		own, err := ownListeners(pid, inherited)
		if err != nil {
			return // the process is gone
		}
		mu.Lock()
		var fresh []string
		for _, a := range own {
			if !warned[a] {
				warned[a] = true
				fresh = append(fresh, a)
			}
		}
		mu.Unlock()
		if len(fresh) > 0 {
			log.Warn("the process listens on sockets of its own besides udsvisor's: it may have ignored LISTEN_FDS",
				zap.Int("pid", pid), zap.Strings("addresses", fresh))
		}
	}
	go check()
	// A timer, not a goroutine asleep: a thousand services starting
	// would keep a thousand stacks for the while.
	time.AfterFunc(ownRecheck, check)
}

// socketInodes returns the socket inode numbers of files.
func socketInodes(files []*os.File) map[uint64]bool {
	inodes := make(map[uint64]bool, len(files))
	for _, f := range files {
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err == nil {
			inodes[st.Ino] = true
		}
	}
	return inodes
}

// ownListeners returns the addresses of the listening sockets that pid
// holds open and that are not in inherited.
func ownListeners(pid int, inherited map[uint64]bool) ([]string, error) {
	dir := "/proc/" + strconv.Itoa(pid)
	ents, err := os.ReadDir(dir + "/fd")
	if err != nil {
		return nil, err
	}
	held := make(map[uint64]bool)
	for _, e := range ents {
		target, err := os.Readlink(dir + "/fd/" + e.Name())
		if err != nil {
			continue
		}
		ino, ok := strings.CutPrefix(target, "socket:[")
		if n, err := strconv.ParseUint(strings.TrimSuffix(ino, "]"), 10, 64); ok && err == nil && !inherited[n] {
			held[n] = true
		}
	}
	if len(held) == 0 {
		return nil, nil
	}
	var own []string
	for _, file := range []string{"tcp", "tcp6"} {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid
		// timeout inode; st 0A is LISTEN.
		_, err := countProcNet(dir+"/net/"+file, func(f []string) bool {
			if len(f) < 10 || f[3] != "0A" || !held[parseUint(f[9])] {
				return false
			}
			if a, ok := parseProcNetAddr(f[1]); ok {
				own = append(own, a.String())
			}
			return true
		})
		if err != nil && !os.IsNotExist(err) {
			return own, err
		}
	}
	// Num RefCount Protocol Flags Type St Inode Path; the flag
	// __SO_ACCEPTCON (0x10000) marks a listening socket.
	_, err = countProcNet(dir+"/net/unix", func(f []string) bool {
		if len(f) < 7 || !held[parseUint(f[6])] {
			return false
		}
		flags, err := strconv.ParseUint(f[3], 16, 32)
		if err != nil || flags&0x10000 == 0 {
			return false
		}
		name := "(unnamed)"
		if len(f) >= 8 {
			name = f[7]
		}
		own = append(own, fmt.Sprintf("unix:%s", name))
		return true
	})
	if err != nil && !os.IsNotExist(err) {
		return own, err
	}
	return own, nil
}

func parseUint(s string) uint64 {
	n, _ := strconv.ParseUint(s, 10, 64)
	return n
}
