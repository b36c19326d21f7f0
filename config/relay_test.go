// SPDX-License-Identifier: Apache-2.0

package config

import (
	"testing"
	"time"
)

// relaySvc is base with a socket on lines 4-5 and a relay table on line 6,
// its keys from line 7.
func relaySvc(keys string) string {
	return base + "[[services.api.sockets]]\npath = \"/run/x/api.sock\"\n[services.api.relay]\n" + keys
}

func TestBadRelay(t *testing.T) {
	const r7 = "services.toml:7: services.api.relay."
	runCases(t, []badCase{
		{"ok", relaySvc("port = 8080\nproxy_protocol = \"v2\"\nconnect_timeout = \"5s\""), nil, nil},
		{"no port", relaySvc(`proxy_protocol = "v1"`), []string{"services.toml:6: services.api.relay.port: is required: the TCP port the app listens on, on 127.0.0.1 in its own network namespace"}, nil},
		{"port 0", relaySvc("port = 0"), []string{r7 + "port: 0 must be 1 to 65535"}, nil},
		{"port too big", relaySvc("port = 65536"), []string{r7 + "port: 65536 must be 1 to 65535"}, nil},
		{"port string", relaySvc(`port = "8080"`), []string{r7 + "port: must be an integer, not a string"}, nil},
		{"proxy v3", relaySvc("port = 80\nproxy_protocol = \"v3\""), []string{"services.toml:8: services.api.relay.proxy_protocol: \"v3\" must be v1 or v2"}, nil},
		{"timeout without unit", relaySvc("port = 80\nconnect_timeout = 5"), []string{"services.toml:8: services.api.relay.connect_timeout: 5 needs a unit, e.g. \"5s\""}, nil},
		{"unknown key", relaySvc("port = 80\nhost = \"0.0.0.0\""), []string{"services.toml:8: services.api.relay.host: unknown key"}, nil},
		{"no socket", base + "[services.api.relay]\nport = 80", []string{"services.toml:4: services.api.relay: a relay needs a socket: it relays the connections accepted on the service's sockets"}, nil},
		{"socket on stdin", base + "[[services.api.sockets]]\npath = \"/run/x/api.sock\"\nstdin = true\n[services.api.relay]\nport = 80",
			[]string{"services.toml:7: services.api.relay: cannot relay from a socket on stdin (api): the relay takes the sockets at fd 3 and up"}, nil},
		{"not a table", base + "relay = 8080", []string{"services.toml:4: services.api.relay: must be a table, not an integer"}, nil},
		{"notify", base + "ready = \"notify\"\n[[services.api.sockets]]\npath = \"/run/x/api.sock\"\n[services.api.relay]\nport = 80",
			[]string{"services.toml:7: services.api.relay: cannot be used with ready = \"notify\": the app runs in a network namespace of its own, where udsvisor's notify socket cannot be reached"}, nil},
	})
}

func TestRelayDefaults(t *testing.T) {
	cfg, err := Parse("services.toml", []byte(relaySvc("port = 8080")))
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Services[0].Relay
	if r == nil || r.Port != 8080 || r.Proxy != "" || r.ConnectTimeout != 30*time.Second {
		t.Errorf("relay %+v; want port 8080, no PROXY header, 30s connect timeout", r)
	}
	cfg, err = Parse("services.toml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Services[0].Relay != nil {
		t.Error("a service without [relay] got one")
	}
}

// The relay's -proxy flag takes the versions the config spells.
func TestProxyProtocolFlagValue(t *testing.T) {
	for _, s := range []string{"", "v1", "v2"} {
		var p ProxyProtocol
		if err := p.Set(s); err != nil || p.String() != s {
			t.Errorf("Set(%q): %v, then String() = %q", s, err, p.String())
		}
	}
	var p ProxyProtocol
	if err := p.Set("v3"); err == nil {
		t.Error(`Set("v3") succeeded`)
	}
}
