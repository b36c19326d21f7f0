// SPDX-License-Identifier: Apache-2.0

package config

import (
	"fmt"
	"time"
)

// Relay runs a TCP-only app in a network namespace of its own, where
// only the loopback interface exists, and relays each connection
// accepted on the service's sockets to 127.0.0.1:Port there
// ([services.NAME.relay]). The app's port is invisible to the host and
// to every other process; only the service's sockets reach it.
type Relay struct {
	Port int
	// Proxy is the PROXY protocol header sent to the app first: "" for
	// none, ProxyV1 or ProxyV2.
	Proxy ProxyProtocol
	// ConnectTimeout is how long a connection the app refuses, once it
	// has listened, is retried before it is closed (before, the relay
	// accepts nothing), and how often the relay warns while it waits for
	// the app to listen.
	ConnectTimeout time.Duration
}

// ProxyProtocol is a version of HAProxy's PROXY protocol.
type ProxyProtocol string

// The PROXY protocol versions a relay can send.
const (
	ProxyV1 ProxyProtocol = "v1"
	ProxyV2 ProxyProtocol = "v2"
)

// String returns the version as the config and Set spell it.
func (p ProxyProtocol) String() string { return string(p) }

// Set parses "v1", "v2" or "" (none), making *ProxyProtocol the
// flag.Value of udsvisor __relay -proxy.
func (p *ProxyProtocol) Set(s string) error {
	switch v := ProxyProtocol(s); v {
	case "", ProxyV1, ProxyV2:
		*p = v
		return nil
	}
	return fmt.Errorf("unknown PROXY protocol version %q (want %s or %s)", s, ProxyV1, ProxyV2)
}

// defaultConnectTimeout is long enough for an app's listener to get
// through a burst.
const defaultConnectTimeout = 30 * time.Second

var relayKeys = []string{"port", "proxy_protocol", "connect_timeout"}

// relay reads the optional [services.NAME.relay] table. It needs the
// sockets read first.
func (c *checker) relay(t table, s *Service) {
	rt, ok := c.subTable(t, "relay")
	if !ok {
		return
	}
	c.unknown(rt, relayKeys...)
	r := &Relay{ConnectTimeout: defaultConnectTimeout}
	if _, ok := rt.m["port"]; !ok {
		c.errorf(rt.sub("port"), "is required: the TCP port the app listens on, on 127.0.0.1 in its own network namespace")
	} else if n, ok := c.integer(rt, "port"); ok {
		if n < 1 || n > 65535 {
			c.errorf(rt.sub("port"), "%d must be 1 to 65535", n)
		} else {
			r.Port = int(n)
		}
	}
	if v, ok := enum(c, rt, "proxy_protocol", ProxyV1, ProxyV2); ok {
		r.Proxy = v
	}
	if d, ok := c.duration(rt, "connect_timeout"); ok {
		r.ConnectTimeout = d
	}
	if len(s.Sockets) == 0 {
		c.errorf(rt.key, "a relay needs a socket: it relays the connections accepted on the service's sockets")
	}
	if s.Ready == ReadyNotify {
		// NOTIFY_SOCKET is an abstract address, which belongs to a
		// network namespace: the app's own is not udsvisor's.
		c.errorf(rt.key, "cannot be used with ready = \"notify\": the app runs in a network namespace of its own, where udsvisor's notify socket cannot be reached")
	}
	for _, sock := range s.Sockets {
		if sock.Stdin {
			c.errorf(rt.key, "cannot relay from a socket on stdin (%s): the relay takes the sockets at fd 3 and up", sock.Name)
		}
	}
	s.Relay = r
}
