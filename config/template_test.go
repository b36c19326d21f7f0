// SPDX-License-Identifier: Apache-2.0

package config

import (
	"slices"
	"testing"
)

// Placeholders expand to the sockets' fd numbers (0 for the one on
// stdin), paths and addresses, in argv and environment values, for names
// with dots too; %%{socket. is a literal %{socket., and other %{ text
// and a lone % stay.
func TestTemplates(t *testing.T) {
	cfg, err := Parse("services.toml", []byte(`
[services.fpm]
command = ["/bin/true", "-b", "unix://%{socket.web.path}", "--fd=%{socket.web.fd}", "%{socket.admin.v2.address}", "%%{socket.web.fd} 100% %{http_code}"]
user = "daemon"
environment = { FPM_SOCKETS = "%{socket.web.path}=%{socket.web.fd}", NGINX = "%{socket.raw.fd};" }
[[services.fpm.sockets]]
name = "raw"
path = "/run/udsv-config-test/raw.sock"
stdin = true
[[services.fpm.sockets]]
name = "web"
path = "/run/udsv-config-test/web.sock"
[[services.fpm.sockets]]
name = "admin.v2"
listen = "127.0.0.1:9000"
`))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Services[0]
	wantArgv := []string{"/bin/true", "-b", "unix:///run/udsv-config-test/web.sock", "--fd=3", "127.0.0.1:9000", "%{socket.web.fd} 100% %{http_code}"}
	if !slices.Equal(s.Command, wantArgv) {
		t.Errorf("command %q, want %q", s.Command, wantArgv)
	}
	wantEnv := []string{"FPM_SOCKETS=/run/udsv-config-test/web.sock=3", "NGINX=0;"}
	if !slices.Equal(s.Environment, wantEnv) {
		t.Errorf("environment %q, want %q", s.Environment, wantEnv)
	}
}
