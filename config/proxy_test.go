// SPDX-License-Identifier: Apache-2.0

package config

import (
	"testing"
)

// svcRoutes is base with an http Unix socket (line 4), a metrics socket
// (line 7) and a TCP socket (line 10); proxy tables start on line 13.
const svcRoutes = base + `[[services.api.sockets]]
name = "http"
path = "/run/udsv-config-test/api.sock"
[[services.api.sockets]]
name = "metrics"
path = "/run/udsv-config-test/metrics.sock"
[[services.api.sockets]]
name = "tcp"
listen = "127.0.0.1:8081"
`

func TestRoutes(t *testing.T) {
	cfg := mustParse(t, svcRoutes+`[[services.api.proxy]]
[[services.api.proxy]]
location = "/metrics/"
socket = "metrics"
[[services.api.proxy]]
host = "API.Example.com"
socket = "tcp"

[services.web]
command = ["true"]
user = "www-data"
[[services.web.sockets]]
listen = "127.0.0.1:8082"
[[services.web.sockets]]
name = "unix"
path = "/run/udsv-config-test/web.sock"
[[services.web.proxy]]
location = "/web/"
`)
	api, web := serviceNamed(cfg, "api"), serviceNamed(cfg, "web")
	type route struct {
		key            string
		line           int
		location, host string
		socket         *Socket
	}
	var got []route
	for _, s := range []*Service{api, web} {
		for _, r := range s.Proxy {
			got = append(got, route{r.Key, r.Line, r.Location, r.Host, r.Socket})
		}
	}
	want := []route{
		{"services.api.proxy[0]", 13, "/", "", api.Sockets[0]},
		{"services.api.proxy[1]", 14, "/metrics/", "", api.Sockets[1]},
		{"services.api.proxy[2]", 17, "/", "api.example.com", api.Sockets[2]},
		// The default is the first Unix socket, not the first socket.
		{"services.web.proxy[0]", 29, "/web/", "", web.Sockets[1]},
	}
	if len(got) != len(want) {
		t.Fatalf("routes: %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("route %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if len(serviceNamed(mustParse(t, svcRoutes), "api").Proxy) != 0 {
		t.Error("a service without [[proxy]] tables has routes")
	}
}

func TestBadRoutes(t *testing.T) {
	r14 := "services.toml:14: services.api.proxy[0]"
	route := func(keys string) string { return svcRoutes + "[[services.api.proxy]]\n" + keys }
	tcpOnly := base + "[[services.api.sockets]]\nlisten = \"127.0.0.1:8081\"\n[[services.api.proxy]]\n"
	runCases(t, []badCase{
		{"no slash at the end", route(`location = "/api"`), []string{r14 + `.location: "/api" must start and end with "/", like "/api/"`}, nil},
		{"relative", route(`location = "api/"`), []string{r14 + `.location: "api/" must start and end with "/", like "/api/"`}, nil},
		{"empty", route(`location = ""`), []string{r14 + `.location: "" must start and end with "/", like "/api/"`}, nil},
		{"space", route(`location = "/a b/"`), []string{r14 + `.location: "/a b/" may only hold letters, digits, "/" and ._~@+,=:- (no empty segments)`}, nil},
		{"injection", route(`location = "/a/; } server { listen 81; location /x/"`), []string{r14 + `.location: "/a/; } server { listen 81; location /x/" may only hold letters, digits, "/" and ._~@+,=:- (no empty segments)`}, nil},
		{"quote", route(`location = "/a\"/"`), []string{r14 + `.location: "/a\"/" may only hold letters, digits, "/" and ._~@+,=:- (no empty segments)`}, nil},
		{"empty segment", route(`location = "/a//"`), []string{r14 + `.location: "/a//" may only hold letters, digits, "/" and ._~@+,=:- (no empty segments)`}, nil},
		{"dotdot", route(`location = "/a/../"`), []string{r14 + `.location: "/a/../" must not have "." or ".." segments`}, nil},
		{"location type", route(`location = 1`), []string{r14 + `.location: must be a string, not an integer`}, nil},
		{"host with port", route(`host = "api.example.com:80"`), []string{r14 + `.host: "api.example.com:80" is not a DNS name like "api.example.com"`}, nil},
		{"host with space", route(`host = "a b"`), []string{r14 + `.host: "a b" is not a DNS name like "api.example.com"`}, nil},
		{"host trailing dot", route(`host = "example.com."`), []string{r14 + `.host: "example.com." is not a DNS name like "api.example.com"`}, nil},
		{"host wildcard", route(`host = "*.example.com"`), []string{r14 + `.host: "*.example.com" is not a DNS name like "api.example.com"`}, nil},
		{"host hyphen", route(`host = "-a.example.com"`), []string{r14 + `.host: "-a.example.com" is not a DNS name like "api.example.com"`}, nil},
		{"unknown socket", route(`socket = "admin"`), []string{r14 + `.socket: services.api has no socket named "admin"; it has "http", "metrics", "tcp"`}, nil},
		{"socket type", route(`socket = 0`), []string{r14 + `.socket: must be a string, not an integer`}, nil},
		{"no sockets", base + "[[services.api.proxy]]\n", []string{`services.toml:4: services.api.proxy[0]: services.api has no sockets to route to`}, nil},
		{"no unix socket", tcpOnly, []string{`services.toml:6: services.api.proxy[0]: services.api has no Unix socket; set socket to the name of a TCP one; it has "api"`}, nil},
		{"tcp by name", tcpOnly + `socket = "api"`, nil, nil},
		{"unknown key", route(`path = "/api/"`), []string{r14 + `.path: unknown key`}, nil},
		{"not tables", base + `proxy = "/api/"`, []string{`services.toml:4: services.api.proxy: must be an array of tables ([[services.api.proxy]]), not a string`}, nil},
		{"inline tables", base + "proxy = [{ location = \"/\" }]\n[[services.api.sockets]]\npath = \"/run/udsv-config-test/api.sock\"\n", nil, nil},
		{"same route twice", route("location = \"/x/\"\n[[services.api.proxy]]\nlocation = \"/x/\"\nsocket = \"metrics\""), []string{
			`services.toml:15: services.api.proxy[1]: location "/x/" on the default host is already routed by services.api.proxy[0] (services.toml:13)`,
		}, nil},
		{"same location, other host", route("location = \"/x/\"\n[[services.api.proxy]]\nlocation = \"/x/\"\nhost = \"a.example\""), nil, nil},
		{"same host across services", route("host = \"A.example\"\n[services.web]\ncommand = [\"true\"]\nuser = \"www-data\"\n[[services.web.sockets]]\npath = \"/run/udsv-config-test/web.sock\"\n[[services.web.proxy]]\nhost = \"a.example\""), []string{
			`services.toml:20: services.web.proxy[0]: location "/" on host "a.example" is already routed by services.api.proxy[0] (services.toml:13)`,
		}, nil},
	})
}
