// SPDX-License-Identifier: Apache-2.0

package config

import (
	"testing"
)

// TestGolden: one file with many problems gives all of them at once, in
// file order, each as file:line: key: message.
func TestGolden(t *testing.T) {
	src := `# udsvisor services
[supervisor]
control_mode = 660
log_format = "xml"

[services.api]
command = ["uvicorn-udsv-missing", "app:app"]
user = "nosuch"
environment = { APP_ENV = "prod", LISTEN_FDS = "3" }
stop_timeout = "10"
description = """
user = "root"
[[services.api.sockets]]
"""

[[services.api.sockets]]
name = "http"
path = "/var/run/api/api.sock"
mode = "0778"

[[services.api.sockets]]
name = "admin"
path = "/run/udsv-config-test/admin.sock"
mdoe = "0660"
backlog = 0

[services."web/1"]
command = ["true"]
user = "root"

[[services."web/1".sockets]]
listen = "0.0.0.0:8080"

[[services."web/1".sockets]]
name = "b"
path = "/run/udsv-config-test/admin.sock"
`
	want := `
services.toml:3: supervisor.control_mode: control_mode must be a string like "0660"; 660 is decimal (octal 1224)
services.toml:4: supervisor.log_format: "xml" must be console or json
services.toml:7: services.api.command[0]: "uvicorn-udsv-missing" not found in PATH "/usr/local/bin:/usr/bin:/bin"
services.toml:8: services.api.user: unknown user "nosuch"
services.toml:9: services.api.environment.LISTEN_FDS: LISTEN_FDS is set by udsvisor
services.toml:10: services.api.stop_timeout: "10" needs a unit, e.g. "10s"
services.toml:11: services.api.description: unknown key
services.toml:18: services.api.sockets[0].path: /var/run is a symlink to /run; write "/run/api/api.sock"
services.toml:19: services.api.sockets[0].mode: "0778" is not an octal mode like "0660"
services.toml:24: services.api.sockets[1].mdoe: unknown key
services.toml:25: services.api.sockets[1].backlog: 0 is out of range 1-65535
services.toml:27: services."web/1": "web/1" is not a valid service name; names are [A-Za-z0-9_.@-]{1,64}
services.toml:29: services."web/1".user: refusing to run as root; set allow_root = true
services.toml:32: services."web/1".sockets[0].listen: "0.0.0.0:8080" binds every interface; use "127.0.0.1:8080" or set public = true
services.toml:36: services."web/1".sockets[1].path: same socket as services.api.sockets[1] (services.toml:23)
`[1:]
	_, err := Parse("services.toml", []byte(src))
	if err == nil {
		t.Fatal("Parse accepted a broken config")
	}
	if got := err.Error() + "\n"; got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}
