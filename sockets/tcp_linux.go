// SPDX-License-Identifier: Apache-2.0

package sockets

import (
	"fmt"
	"net"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// bindTCP creates a listening TCP socket on exactly spec.Addr. It uses raw
// syscalls rather than net.Listen so that the fd stays blocking and out of
// Go's poller, and so that no wildcard or dual-stack address sneaks in
// (SECURITY-NOTES 0.9, T22).
func bindTCP(spec Spec) (*Listener, error) {
	fail := func(err error) error { return fmt.Errorf("listen %s: %w", spec.Addr, err) }
	ip := spec.Addr.Addr().Unmap()
	port := int(spec.Addr.Port())
	var (
		family int
		sa     unix.Sockaddr
	)
	if ip.Is4() {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: port, Addr: ip.As4()}
	} else {
		zone, err := zoneIndex(ip.Zone())
		if err != nil {
			return nil, fail(err)
		}
		family, sa = unix.AF_INET6, &unix.SockaddrInet6{Port: port, ZoneId: zone, Addr: ip.As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fail(os.NewSyscallError("socket", err))
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	// SO_REUSEADDR lets a restarted udsvisor bind while connections of its
	// predecessor sit in TIME_WAIT. Never SO_REUSEPORT: it would let
	// another process bind the same port and steal connections.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return nil, fail(os.NewSyscallError("setsockopt SO_REUSEADDR", err))
	}
	if family == unix.AF_INET6 {
		// The socket serves the configured address only, never the
		// IPv4 addresses as well (net.ipv6.bindv6only is 0 by default).
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return nil, fail(os.NewSyscallError("setsockopt IPV6_V6ONLY", err))
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, fail(err)
	}
	if err := unix.Listen(fd, spec.Backlog); err != nil {
		return nil, fail(err)
	}
	ok = true
	return &Listener{
		spec: spec,
		file: os.NewFile(uintptr(fd), spec.Addr.String()),
		dir:  -1,
		node: -1,
	}, nil
}

// zoneIndex returns the interface index of an IPv6 zone, given as a name
// or a number.
func zoneIndex(zone string) (uint32, error) {
	if zone == "" {
		return 0, nil
	}
	if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
		return uint32(n), nil
	}
	ifi, err := net.InterfaceByName(zone)
	if err != nil {
		return 0, fmt.Errorf("zone %q: %w", zone, err)
	}
	return uint32(ifi.Index), nil
}
