// SPDX-License-Identifier: Apache-2.0

package sockets

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

func mustAddrPort(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// sockname returns the address the kernel says fd is bound to.
func sockname(t *testing.T, fd int) netip.AddrPort {
	t.Helper()
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
	}
	t.Fatalf("getsockname: %T", sa)
	return netip.AddrPort{}
}

// loopback returns the loopback address to dial a socket bound to addr.
func loopback(addr netip.Addr) netip.Addr {
	switch {
	case addr.IsUnspecified() && addr.Is4():
		return netip.MustParseAddr("127.0.0.1")
	case addr.IsUnspecified():
		return netip.IPv6Loopback()
	}
	return addr
}

func sockopt(t *testing.T, fd, level, opt int) int {
	t.Helper()
	v, err := unix.GetsockoptInt(fd, level, opt)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// T22: a TCP socket listens on exactly the configured IP, never a
// wildcard or a dual-stack address, as getsockname and the kernel's
// /proc/net/tcp{,6} tables show.
func TestT22TCPExactAddress(t *testing.T) {
	testutil.RequireRoot(t)
	cases := []string{"127.0.0.1:0"}
	if _, err := os.Stat("/proc/net/if_inet6"); err == nil {
		// The kernel sets IPV6_V6ONLY by itself on a specific address,
		// so only the wildcard shows that Bind sets it.
		cases = append(cases, "[::1]:0", "[::]:0")
	}
	for _, addr := range cases {
		t.Run(addr, func(t *testing.T) {
			spec := Spec{Addr: mustAddrPort(t, addr), Backlog: 16}
			l := bindT(t, newBinder(), spec)
			fd := int(l.File().Fd())
			got := sockname(t, fd)
			if got.Addr() != spec.Addr.Addr() || got.Port() == 0 {
				t.Errorf("getsockname = %v, want %v with a port", got, spec.Addr.Addr())
			}
			// The kernel's own table, not just getsockname: no wildcard
			// (nor another address) listens on the port for a
			// loopback config.
			if got, want := procNetListeners(t, got.Port()), []netip.Addr{spec.Addr.Addr()}; !slices.Equal(got, want) {
				t.Errorf("/proc/net/tcp{,6} lists listeners %v on the port, want exactly %v", got, want)
			}
			if v := sockopt(t, fd, unix.SOL_SOCKET, unix.SO_REUSEADDR); v != 1 {
				t.Errorf("SO_REUSEADDR = %d", v)
			}
			if v := sockopt(t, fd, unix.SOL_SOCKET, unix.SO_REUSEPORT); v != 0 {
				t.Errorf("SO_REUSEPORT = %d", v)
			}
			if v := sockopt(t, fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); v != 1 {
				t.Errorf("SO_ACCEPTCONN = %d", v)
			}
			if spec.Addr.Addr().Is6() {
				if v := sockopt(t, fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY); v != 1 {
					t.Errorf("IPV6_V6ONLY = %d", v)
				}
			}
			wantBlockingCloexec(t, fd)
			if dev, ino := l.inode(); dev != 0 || ino != 0 {
				t.Errorf("inode() = %d,%d for TCP", dev, ino)
			}
			if err := l.SetOwner(0, 0, 0o600); err == nil {
				t.Error("SetOwner succeeded on a TCP socket")
			}
			if spec.Addr.Addr().IsUnspecified() {
				// With IPV6_V6ONLY, [::] leaves the IPv4 wildcard free.
				v4, err := net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", got.Port()))
				if err != nil {
					t.Errorf("[::] also claimed IPv4: %v", err)
				} else {
					v4.Close()
				}
			}
			conn, err := net.Dial("tcp", netip.AddrPortFrom(loopback(spec.Addr.Addr()), got.Port()).String())
			if err != nil {
				t.Fatal(err)
			}
			conn.Close()
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
		})
	}
}

// udsvisor is root, so a privileged port needs no capability in the
// child: the child receives the bound fd.
func TestTCPPrivilegedPort(t *testing.T) {
	testutil.RequireRoot(t)
	for port := 81; port < 90; port++ {
		spec := Spec{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)), Backlog: 16}
		l, err := Bind(spec)
		if err != nil && strings.HasSuffix(err.Error(), unix.EADDRINUSE.Error()) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if got := sockname(t, int(l.File().Fd())); got != spec.Addr {
			t.Errorf("getsockname = %v, want %v", got, spec.Addr)
		}
		return
	}
	testutil.Unavailable(t, "ports 81-89 on 127.0.0.1 are all in use")
}

func TestTCPAddressInUse(t *testing.T) {
	testutil.RequireRoot(t)
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ap := other.Addr().(*net.TCPAddr).AddrPort()
	_, err = Bind(Spec{Addr: ap, Backlog: 16})
	want := fmt.Sprintf("listen %s: address already in use", ap)
	if err == nil || err.Error() != want {
		t.Fatalf("Bind error %v, want %q", err, want)
	}
}

// procNetListeners returns the local addresses of every TCP socket in
// LISTEN state on port, from /proc/net/tcp and /proc/net/tcp6 (the
// latter only where IPv6 is enabled).
func procNetListeners(t *testing.T, port uint16) []netip.Addr {
	t.Helper()
	var addrs []netip.Addr
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if os.IsNotExist(err) && table == "/proc/net/tcp6" {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			// sl local_address rem_address st ...
			f := strings.Fields(line)
			if len(f) < 4 || f[3] != "0A" { // TCP_LISTEN
				continue
			}
			hexAddr, hexPort, ok := strings.Cut(f[1], ":")
			p, err := strconv.ParseUint(hexPort, 16, 16)
			if !ok || err != nil {
				t.Fatalf("%s: local address %q", table, f[1])
			}
			if uint16(p) != port {
				continue
			}
			addrs = append(addrs, procNetAddr(t, hexAddr))
		}
	}
	return addrs
}

// procNetAddr decodes an address of /proc/net/tcp{,6}: 32-bit words in
// hex, each in host (little-endian) byte order.
func procNetAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	raw, err := hex.DecodeString(s)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		t.Fatalf("address %q in /proc/net/tcp", s)
	}
	for i := 0; i < len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	a, _ := netip.AddrFromSlice(raw)
	return a
}
