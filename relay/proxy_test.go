// SPDX-License-Identifier: Apache-2.0

package relay

import (
	"bytes"
	"net"
	"testing"
)

func tcp(ip string, port int) *net.TCPAddr {
	return &net.TCPAddr{IP: net.ParseIP(ip), Port: port}
}

func TestRelayHeaderV1(t *testing.T) {
	for _, tc := range []struct {
		name     string
		src, dst net.Addr
		want     string
	}{
		{"tcp4", tcp("192.0.2.7", 56324), tcp("198.51.100.1", 443),
			"PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n"},
		{"tcp6", tcp("2001:db8::7", 40000), tcp("2001:db8::1", 8443),
			"PROXY TCP6 2001:db8::7 2001:db8::1 40000 8443\r\n"},
		{"ipv4 client of a dual-stack listener", tcp("::ffff:192.0.2.7", 1), tcp("::ffff:127.0.0.1", 80),
			"PROXY TCP4 192.0.2.7 127.0.0.1 1 80\r\n"},
		{"zone dropped", &net.TCPAddr{IP: net.ParseIP("fe80::7"), Port: 2, Zone: "eth0"}, tcp("fe80::1", 3),
			"PROXY TCP6 fe80::7 fe80::1 2 3\r\n"},
		{"unix", &net.UnixAddr{Name: "", Net: "unix"}, &net.UnixAddr{Name: "/run/app/api.sock", Net: "unix"},
			"PROXY UNKNOWN\r\n"},
	} {
		if got := headerV1(tc.src, tc.dst); string(got) != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

// sig is the v2 signature, spelled out as the spec does.
var sig = []byte{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// sunPath is name NUL-padded to 108 bytes.
func sunPath(name string) []byte {
	b := make([]byte, 108)
	copy(b, name)
	return b
}

func TestRelayHeaderV2(t *testing.T) {
	for _, tc := range []struct {
		name     string
		src, dst net.Addr
		want     []byte
	}{
		{"tcp4", tcp("192.0.2.7", 56324), tcp("198.51.100.1", 443), cat(sig, []byte{
			0x21, 0x11, 0x00, 0x0C,
			192, 0, 2, 7,
			198, 51, 100, 1,
			0xDC, 0x04, // 56324
			0x01, 0xBB, // 443
		})},
		{"tcp6", tcp("2001:db8::7", 40000), tcp("2001:db8::1", 8443), cat(sig, []byte{
			0x21, 0x21, 0x00, 0x24,
			0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x07,
			0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
			0x9C, 0x40, // 40000
			0x20, 0xFB, // 8443
		})},
		{"ipv4 client of a dual-stack listener", tcp("::ffff:192.0.2.7", 1), tcp("::ffff:127.0.0.1", 80), cat(sig, []byte{
			0x21, 0x11, 0x00, 0x0C,
			192, 0, 2, 7,
			127, 0, 0, 1,
			0x00, 0x01,
			0x00, 0x50,
		})},
		{"unix, unnamed client", &net.UnixAddr{Name: "", Net: "unix"}, &net.UnixAddr{Name: "/run/app/api.sock", Net: "unix"}, cat(sig,
			[]byte{0x21, 0x31, 0x00, 0xD8}, // 216 = 2 × 108
			sunPath(""),
			sunPath("/run/app/api.sock"),
		)},
		{"unix, named client, abstract listener", &net.UnixAddr{Name: "/tmp/client.sock", Net: "unix"}, &net.UnixAddr{Name: "@app", Net: "unix"}, cat(sig,
			[]byte{0x21, 0x31, 0x00, 0xD8},
			sunPath("/tmp/client.sock"),
			sunPath("\x00app"),
		)},
		{"no address", nil, nil, cat(sig, []byte{0x21, 0x00, 0x00, 0x00})},
	} {
		if got := headerV2(tc.src, tc.dst); !bytes.Equal(got, tc.want) {
			t.Errorf("%s:\n got % x\nwant % x", tc.name, got, tc.want)
		}
	}
}
