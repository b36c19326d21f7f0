// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Start on demand and stop when idle (start = "on-demand", idle_stop):
// udsvisor never accepts a connection of a service; it watches its own
// copies of the listeners.

// listenerWatch tells when a connection comes to one of a service's
// listeners. Level-triggered (a demand watch), it calls come once, as
// soon as a connection waits, and ends. Edge-triggered (an activity
// watch), it notes each new connection, even one the process accepts at
// once, until stopped; seen tells whether any came since the last look.
type listenerWatch struct {
	ep   *polledEpoll
	once sync.Once
	seen atomic.Bool
}

func watchListeners(listeners []*os.File, edge bool, come func()) (*listenerWatch, error) {
	events := uint32(unix.EPOLLIN)
	if edge {
		events |= unix.EPOLLET
	}
	ep, err := watchEpoll("listener-watch", listeners, events)
	if err != nil {
		return nil, err
	}
	w := &listenerWatch{ep: ep}
	go w.run(edge, come)
	return w, nil
}

func (w *listenerWatch) run(edge bool, come func()) {
	defer w.stop()
	var events [4]unix.EpollEvent
	for {
		if n, err := w.ep.wait(events[:]); err != nil || n == 0 {
			return
		}
		if !edge {
			come()
			return
		}
		w.seen.Store(true)
	}
}

// sawSome reports whether a connection came since the last call.
func (w *listenerWatch) sawSome() bool { return w.seen.Swap(false) }

// stop ends the watch; it may be called any number of times.
func (w *listenerWatch) stop() {
	if w == nil {
		return
	}
	w.once.Do(func() { w.ep.Close() })
}

// openConnections counts the connections accepted from listeners that
// are still open, or waiting to be accepted, from /proc/net: a Unix
// connection carries its listener's bound name, a TCP one its local
// address.
func openConnections(listeners []*os.File) (int, error) {
	var unixNames []string
	var tcp []netip.AddrPort
	for _, l := range listeners {
		sa, err := unix.Getsockname(int(l.Fd()))
		if err != nil {
			return 0, os.NewSyscallError("getsockname", err)
		}
		switch sa := sa.(type) {
		case *unix.SockaddrUnix:
			unixNames = append(unixNames, sa.Name)
		case *unix.SockaddrInet4:
			tcp = append(tcp, netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)))
		case *unix.SockaddrInet6:
			tcp = append(tcp, netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port)))
		}
	}
	n := 0
	if len(unixNames) > 0 {
		// Num RefCount Protocol Flags Type St Inode Path; St 03 is
		// connected (a listener is 01).
		m, err := countProcNet("/proc/net/unix", func(f []string) bool {
			return len(f) >= 8 && f[5] == "03" && slices.Contains(unixNames, f[7])
		})
		if err != nil {
			return 0, err
		}
		n += m
	}
	if len(tcp) > 0 {
		for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
			// sl local_address rem_address st ...; st 01 is
			// ESTABLISHED, 03 SYN_RECV.
			m, err := countProcNet(file, func(f []string) bool {
				if len(f) < 4 || (f[3] != "01" && f[3] != "03") {
					return false
				}
				local, ok := parseProcNetAddr(f[1])
				return ok && slices.Contains(tcp, local)
			})
			if err != nil && !os.IsNotExist(err) {
				return 0, err
			}
			n += m
		}
	}
	return n, nil
}

func countProcNet(path string, match func([]string) bool) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Scan() // the header
	for sc.Scan() {
		if match(strings.Fields(sc.Text())) {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	return n, nil
}

// parseProcNetAddr reads "0100007F:1F90" (IPv4) or the 32-digit IPv6
// form: the address as the kernel stores it, in 32-bit words of host
// byte order, then the port in hex.
func parseProcNetAddr(s string) (netip.AddrPort, bool) {
	hexAddr, hexPort, ok := strings.Cut(s, ":")
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if !ok || err != nil || (len(hexAddr) != 8 && len(hexAddr) != 32) {
		return netip.AddrPort{}, false
	}
	var b [16]byte
	for w := 0; w < len(hexAddr)/8; w++ {
		v, err := strconv.ParseUint(hexAddr[8*w:8*w+8], 16, 32)
		if err != nil {
			return netip.AddrPort{}, false
		}
		// Little-endian words (x86, arm64): the first byte is the low one.
		b[4*w], b[4*w+1], b[4*w+2], b[4*w+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
	var addr netip.Addr
	if len(hexAddr) == 8 {
		addr = netip.AddrFrom4([4]byte(b[:4]))
	} else {
		addr = netip.AddrFrom16(b).Unmap()
	}
	return netip.AddrPortFrom(addr, uint16(port)), true
}
