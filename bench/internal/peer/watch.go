// SPDX-License-Identifier: Apache-2.0

//go:build linux

package peer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// execWatch learns of every execve on the machine from the kernel's
// process events connector (netlink, root only), and counts the
// processes that run one program file. Each peer runs its own copy of
// the holder program, so the count is that peer's services starting,
// learnt as they happen at almost no cost, where walking /proc for a
// thousand processes takes 50–100 ms of CPU per walk, as much as the
// supervisors being measured. (inotify's IN_OPEN on the file would be
// simpler, but the kernel merges identical events not yet read, so a
// burst of starts is undercounted.)
type execWatch struct {
	fd   int
	prog string
}

// The process events connector's ABI (linux/connector.h, cn_proc.h).
const (
	cnIdxProc          = 1
	cnValProc          = 1
	procCnMcastListen  = 1
	procCnMcastIgnore  = 2
	procEventExec      = 0x2
	nlmsgHdrLen        = 16
	cnMsgLen           = 20
	procEventHeaderLen = 16 // what, cpu, timestamp_ns
)

// watchExecs starts watching for executions of prog.
func watchExecs(prog string) (*execWatch, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		return nil, fmt.Errorf("proc connector: %w", err)
	}
	w := &execWatch{fd: fd, prog: prog}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		w.close()
		return nil, fmt.Errorf("proc connector: bind: %w", err)
	}
	// A start of 1,000 services is a few thousand events at once.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
	if err := w.control(procCnMcastListen); err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

// control sends the connector a listen or ignore request.
func (w *execWatch) control(op uint32) error {
	b := make([]byte, nlmsgHdrLen+cnMsgLen+4)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], unix.NLMSG_DONE)
	ne.PutUint32(b[12:], uint32(os.Getpid()))
	ne.PutUint32(b[16:], cnIdxProc)
	ne.PutUint32(b[20:], cnValProc)
	ne.PutUint16(b[32:], 4)
	ne.PutUint32(b[36:], op)
	if err := unix.Sendto(w.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("proc connector: %w", err)
	}
	return nil
}

func (w *execWatch) close() {
	if w != nil && w.fd >= 0 {
		_ = w.control(procCnMcastIgnore)
		unix.Close(w.fd)
		w.fd = -1
	}
}

// errOverflow means the kernel dropped events: the count is lost.
var errOverflow = errors.New("process events lost (receive buffer full)")

// wait returns the time at which the n-th process running the program
// was seen. check is called between reads (every 20 ms at most) and
// ends the wait with its error, as do ctx and the deadline.
func (w *execWatch) wait(ctx context.Context, n int, deadline time.Time, check func() error) (time.Time, error) {
	buf := make([]byte, 256*1024)
	seen := map[uint32]bool{}
	for len(seen) < n {
		if err := ctx.Err(); err != nil {
			return time.Time{}, err
		}
		if err := check(); err != nil {
			return time.Time{}, err
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%d of %d started", len(seen), n)
		}
		fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, 20); err != nil && !errors.Is(err, unix.EINTR) {
			return time.Time{}, fmt.Errorf("poll: %w", err)
		}
		for {
			k, _, err := unix.Recvfrom(w.fd, buf, unix.MSG_DONTWAIT)
			if errors.Is(err, unix.ENOBUFS) {
				return time.Time{}, errOverflow
			}
			if err != nil || k <= 0 {
				break // EAGAIN: all read
			}
			for _, pid := range execPids(buf[:k]) {
				if !seen[pid] && w.runs(pid) {
					seen[pid] = true
				}
			}
		}
	}
	return time.Now(), nil
}

// runs reports whether pid runs the watched program.
func (w *execWatch) runs(pid uint32) bool {
	exe, err := os.Readlink("/proc/" + strconv.Itoa(int(pid)) + "/exe")
	return err == nil && exe == w.prog
}

// execPids returns the tgid of every exec event in a datagram of
// netlink messages.
func execPids(b []byte) []uint32 {
	ne := binary.NativeEndian
	var pids []uint32
	for len(b) >= nlmsgHdrLen {
		l := int(ne.Uint32(b))
		if l < nlmsgHdrLen || l > len(b) {
			break
		}
		ev := b[nlmsgHdrLen:l]
		if len(ev) >= cnMsgLen+procEventHeaderLen+8 {
			pe := ev[cnMsgLen:]
			if ne.Uint32(pe) == procEventExec {
				pids = append(pids, ne.Uint32(pe[procEventHeaderLen+4:])) // process_tgid
			}
		}
		next := (l + 3) &^ 3 // messages are 4-byte aligned
		if next >= len(b) {
			break
		}
		b = b[next:]
	}
	return pids
}
