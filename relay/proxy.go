// SPDX-License-Identifier: Apache-2.0

package relay

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/udsvisor/udsvisor/config"
)

// header returns the PROXY protocol header of version p for client, a
// connection accepted on a service's socket. The source is the client's
// address; the destination is the connection's local address, which for
// a TCP listener bound to a wildcard is the address the client reached
// rather than 0.0.0.0, and for a Unix listener is its path.
func header(p config.ProxyProtocol, client net.Conn) []byte {
	if p == config.ProxyV2 {
		return headerV2(client.RemoteAddr(), client.LocalAddr())
	}
	return headerV1(client.RemoteAddr(), client.LocalAddr())
}

// headerV1 is the text form (spec section 2.1). It has no family for Unix
// sockets: their clients are UNKNOWN, after which the receiver uses the
// connection's own addresses.
func headerV1(src, dst net.Addr) []byte {
	s, d, ok := tcpPair(src, dst)
	switch {
	case !ok:
		return []byte("PROXY UNKNOWN\r\n")
	case s.Addr().Is4():
		return fmt.Appendf(nil, "PROXY TCP4 %s %s %d %d\r\n", s.Addr(), d.Addr(), s.Port(), d.Port())
	default:
		return fmt.Appendf(nil, "PROXY TCP6 %s %s %d %d\r\n", s.Addr(), d.Addr(), s.Port(), d.Port())
	}
}

// v2Signature starts every binary header (spec section 2.2).
var v2Signature = []byte("\r\n\r\n\x00\r\nQUIT\n")

// The version-and-command byte and the family-and-protocol bytes of the
// binary header.
const (
	v2Proxy      = 0x21 // version 2, command PROXY
	v2Unspec     = 0x00 // AF_UNSPEC: the receiver uses the real addresses
	v2TCP4       = 0x11 // AF_INET, STREAM
	v2TCP6       = 0x21 // AF_INET6, STREAM
	v2UnixStream = 0x31 // AF_UNIX, STREAM
	v2UnixLen    = 108  // each of the two AF_UNIX addresses, NUL-padded
)

// headerV2 is the binary form (spec section 2.2): TCP4 or TCP6 for a TCP
// client, AF_UNIX stream with the peer's name (usually empty: clients
// rarely bind) and the listener's path for a Unix client.
func headerV2(src, dst net.Addr) []byte {
	h := append([]byte(nil), v2Signature...)
	h = append(h, v2Proxy)
	if s, d, ok := tcpPair(src, dst); ok {
		if s.Addr().Is4() {
			h = append(h, v2TCP4, 0, 12)
			h = append(h, s.Addr().AsSlice()...)
			h = append(h, d.Addr().AsSlice()...)
		} else {
			h = append(h, v2TCP6, 0, 36)
			h = append(h, s.Addr().AsSlice()...)
			h = append(h, d.Addr().AsSlice()...)
		}
		h = binary.BigEndian.AppendUint16(h, s.Port())
		return binary.BigEndian.AppendUint16(h, d.Port())
	}
	su, sok := src.(*net.UnixAddr)
	du, dok := dst.(*net.UnixAddr)
	if !sok || !dok || du == nil {
		return append(h, v2Unspec, 0, 0)
	}
	h = append(h, v2UnixStream, 0, 2*v2UnixLen)
	h = appendUnix(h, su)
	return appendUnix(h, du)
}

// appendUnix appends a's name as a 108-byte sun_path: NUL-padded, and
// with the leading NUL of the kernel's form for an abstract name, which
// Go writes as "@name".
func appendUnix(h []byte, a *net.UnixAddr) []byte {
	var path [v2UnixLen]byte
	if a != nil {
		name := a.Name
		if len(name) > 0 && name[0] == '@' {
			name = "\x00" + name[1:]
		}
		copy(path[:], name)
	}
	return append(h, path[:]...)
}

// tcpPair returns src and dst as address-port pairs of one family when
// both are TCP addresses. An IPv4 client of a dual-stack listener shows
// as ::ffff:a.b.c.d on both ends; it is unmapped to TCP4, the family the
// client really used.
func tcpPair(src, dst net.Addr) (s, d netip.AddrPort, ok bool) {
	st, sok := src.(*net.TCPAddr)
	dt, dok := dst.(*net.TCPAddr)
	if !sok || !dok || st == nil || dt == nil {
		return s, d, false
	}
	s, d = st.AddrPort(), dt.AddrPort()
	s = netip.AddrPortFrom(s.Addr().Unmap().WithZone(""), s.Port())
	d = netip.AddrPortFrom(d.Addr().Unmap().WithZone(""), d.Port())
	if !s.Addr().IsValid() || !d.Addr().IsValid() {
		return s, d, false
	}
	if s.Addr().Is4() != d.Addr().Is4() {
		// Cannot happen on one socket; if it did, both go as IPv6.
		s = netip.AddrPortFrom(netip.AddrFrom16(s.Addr().As16()), s.Port())
		d = netip.AddrPortFrom(netip.AddrFrom16(d.Addr().As16()), d.Port())
	}
	return s, d, true
}
