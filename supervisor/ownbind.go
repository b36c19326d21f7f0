// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
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
	held, err := heldSockets(dir+"/fd", inherited)
	if err != nil || len(held) == 0 {
		return nil, err
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

// heldSockets returns the inodes of the sockets open in fdDir
// (/proc/PID/fd) that are not in inherited. At 1,000 services this runs
// 2,000 times in the seconds after a start: names unsorted, links read
// relative to the directory into one buffer, nothing allocated for an fd
// that is not a socket.
func heldSockets(fdDir string, inherited map[uint64]bool) (map[uint64]bool, error) {
	d, err := os.Open(fdDir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	var (
		held map[uint64]bool
		buf  [64]byte // "socket:[" and at most 20 digits and "]"
	)
	for _, name := range names {
		n, err := unix.Readlinkat(int(d.Fd()), name, buf[:])
		if err != nil {
			continue // closed meanwhile
		}
		ino, ok := bytes.CutPrefix(buf[:n], []byte("socket:["))
		if !ok || len(ino) < 2 || ino[len(ino)-1] != ']' {
			continue
		}
		if v, err := strconv.ParseUint(string(ino[:len(ino)-1]), 10, 64); err == nil && !inherited[v] {
			if held == nil {
				held = make(map[uint64]bool)
			}
			held[v] = true
		}
	}
	return held, nil
}

func parseUint(s string) uint64 {
	n, _ := strconv.ParseUint(s, 10, 64)
	return n
}
