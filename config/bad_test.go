// SPDX-License-Identifier: Apache-2.0

package config

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// base is a valid service on lines 1-3; cases append from line 4.
const base = `[services.api]
command = ["true"]
user = "daemon"
`

// sock appends a socket table on line 4; its keys start on line 5.
func sock(keys string) string { return base + "[[services.api.sockets]]\n" + keys }

type badCase struct {
	name  string
	src   string
	errs  []string // exact, in order
	warns []string // exact, checked when errs is empty
}

func runCases(t *testing.T, cases []badCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("services.toml", []byte(tt.src))
			var got []string
			if err != nil {
				got = messages(err.(Errors))
			}
			if !reflect.DeepEqual(got, tt.errs) {
				t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.errs, "\n"))
			}
			if err != nil {
				return
			}
			if w := messages(cfg.Warnings); !reflect.DeepEqual(w, tt.warns) && len(w)+len(tt.warns) > 0 {
				t.Fatalf("warnings:\n%s\nwant:\n%s", strings.Join(w, "\n"), strings.Join(tt.warns, "\n"))
			}
		})
	}
}

const p5 = "services.toml:5: services.api.sockets[0].path: "

// TestBadSocketPaths is the path rows of the bad-input catalogue that do
// not need a prepared directory.
func TestBadSocketPaths(t *testing.T) {
	long := "/run/" + strings.Repeat("x", 126)
	runCases(t, []badCase{
		{"relative", sock(`path = "run/a.sock"`), []string{p5 + `path "run/a.sock" must be absolute`}, nil},
		{"tilde", sock(`path = "~/a.sock"`), []string{p5 + `path "~/a.sock" must be absolute`}, nil},
		{"empty", sock(`path = ""`), []string{p5 + `path "" must be absolute`}, nil},
		{"T9 abstract", sock(`path = "@api"`), []string{p5 + `abstract sockets have no permissions; use a filesystem path`}, nil},
		{"dotdot", sock(`path = "/run/a/../b.sock"`), []string{p5 + `not a clean path; did you mean "/run/b.sock"?`}, nil},
		{"dot", sock(`path = "/run/./b.sock"`), []string{p5 + `not a clean path; did you mean "/run/b.sock"?`}, nil},
		{"double slash", sock(`path = "/run//b.sock"`), []string{p5 + `not a clean path; did you mean "/run/b.sock"?`}, nil},
		{"trailing slash", sock(`path = "/run/b.sock/"`), []string{p5 + `not a clean path; did you mean "/run/b.sock"?`}, nil},
		{"root", sock(`path = "/"`), []string{p5 + `must name a socket file, not /`}, nil},
		{"T30 private name", sock(`path = "/run/app/.web.sock.udsvisor"`), []string{p5 + `".web.sock.udsvisor" has the form .NAME.udsvisor, which udsvisor keeps for the private second name of socket NAME; choose another name`}, nil},
		{"T30 dotfile is fine", sock(`path = "/run/udsv-config-test/.web.sock"`), nil, nil},
		{"too long", sock(`path = "` + long + `"`), []string{p5 + `is 131 bytes; Unix socket paths are limited to 107`}, nil},
		{"107 bytes is fine", sock(`path = "/run/udsv-config-test/` + strings.Repeat("x", 107-22) + `"`), nil, nil},
		{"long component", sock(`path = "/run/` + strings.Repeat("y", 256) + `"`), []string{p5 + `has a 256-byte component; file names are limited to 255`}, nil},
		{"NUL", sock(`path = "/run/a\u0000b"`), []string{p5 + `contains a NUL byte`}, nil},
		{"tmp", sock(`path = "/tmp/x.sock"`), []string{p5 + `/tmp is world-writable; others could squat or replace the socket`}, nil},
		{"dev shm", sock(`path = "/dev/shm/x.sock"`), []string{p5 + `/dev/shm is world-writable; others could squat or replace the socket`}, nil},
		{"var run", sock(`path = "/var/run/app/a.sock"`), []string{p5 + `/var/run is a symlink to /run; write "/run/app/a.sock"`}, nil},
		{"not a directory", sock(`path = "/etc/passwd/a.sock"`), []string{p5 + `/etc/passwd is not a directory`}, nil},
		{"existing non-socket", sock(`path = "/etc/passwd"`), []string{p5 + `/etc/passwd exists and is a regular file, not a socket`}, nil},
		{"no path or listen", sock(`mode = "0660"`), []string{`services.toml:4: services.api.sockets[0]: exactly one of path or listen`}, nil},
		{"path and listen", sock("path = \"/run/a.sock\"\nlisten = \"127.0.0.1:80\""), []string{`services.toml:4: services.api.sockets[0]: exactly one of path or listen`}, nil},
		{"public on unix", sock("path = \"/run/udsv-config-test/a.sock\"\npublic = true"), []string{`services.toml:6: services.api.sockets[0].public: public applies only to TCP sockets (listen)`}, nil},
	})
}

const m6 = "services.toml:6: services.api.sockets[0].mode: "

func TestBadModes(t *testing.T) {
	unix := func(k string) string { return sock("path = \"/run/udsv-config-test/a.sock\"\n" + k) }
	d6 := "services.toml:6: services.api.sockets[0].directory_mode: "
	runCases(t, []badCase{
		{"not octal", unix(`mode = "0778"`), []string{m6 + `"0778" is not an octal mode like "0660"`}, nil},
		{"ls form", unix(`mode = "rw-rw----"`), []string{m6 + `"rw-rw----" is not an octal mode like "0660"; write "0660"`}, nil},
		{"ls -l of a socket", unix(`mode = "srw-rw-r--"`), []string{m6 + `"srw-rw-r--" is not an octal mode like "0660"; write "0664"`}, nil},
		{"too many digits", unix(`mode = "00660"`), []string{m6 + `"00660" is not an octal mode like "0660"`}, nil},
		{"integer", unix(`mode = 660`), []string{m6 + `mode must be a string like "0660"; 660 is decimal (octal 1224)`}, nil},
		{"toml octal integer", unix(`mode = 0o660`), []string{m6 + `mode must be a string like "0660"; 432 is decimal (octal 660)`}, nil},
		{"boolean", unix(`mode = true`), []string{m6 + `must be a string like "0660", not a boolean`}, nil},
		{"setuid", unix(`mode = "4660"`), []string{m6 + `setuid/setgid/sticky bits are meaningless on a socket`}, nil},
		{"sticky", unix(`mode = "1777"`), []string{m6 + `setuid/setgid/sticky bits are meaningless on a socket`}, nil},
		{"no write bit", unix(`mode = "0440"`), []string{m6 + `"0440" has no write bit: connect(2) needs write permission`}, nil},
		{"three digits", unix(`mode = "600"`), nil, nil},
		{"world-connectable 0666", unix(`mode = "0666"`), nil,
			[]string{m6 + `"0666" makes the socket world-connectable: every local user can connect`}},
		{"world-connectable 0777", unix(`mode = "0777"`), nil,
			[]string{m6 + `"0777" makes the socket world-connectable: every local user can connect`}},
		{"loose directory", unix(`directory_mode = "0777"`), []string{d6 + `"0777" would be writable by others; they could replace the socket`}, nil},
		{"group-writable directory", unix(`directory_mode = "0775"`), []string{d6 + `"0775" would be writable by others; they could replace the socket`}, nil},
		{"directory integer", unix(`directory_mode = 755`), []string{d6 + `directory_mode must be a string like "0755"; 755 is decimal (octal 1363)`}, nil},
		{"umask too big", base + `umask = "1022"`, []string{`services.toml:4: services.api.umask: "1022" is not a umask; it must be at most "0777"`}, nil},
		{"umask integer", base + `umask = 22`, []string{`services.toml:4: services.api.umask: umask must be a string like "0022"; 22 is decimal (octal 26)`}, nil},
	})
}

func TestBadTCP(t *testing.T) {
	l5 := "services.toml:5: services.api.sockets[0].listen: "
	tcp := func(addr string) string { return sock(`listen = "` + addr + `"`) }
	runCases(t, []badCase{
		{"T22 empty host", tcp(":8080"), []string{l5 + `":8080" binds every interface; use "127.0.0.1:8080" or set public = true`}, nil},
		{"T22 any v4", tcp("0.0.0.0:80"), []string{l5 + `"0.0.0.0:80" binds every interface; use "127.0.0.1:80" or set public = true`}, nil},
		{"T22 any v6", tcp("[::]:80"), []string{l5 + `"[::]:80" binds every interface; use "127.0.0.1:80" or set public = true`}, nil},
		{"wildcard public", sock("listen = \":8080\"\npublic = true"), nil, nil},
		{"T22 hostname", tcp("localhost:8080"), []string{l5 + `"localhost:8080": use an IP literal, e.g. "127.0.0.1:8080"`}, nil},
		{"port 0", tcp("127.0.0.1:0"), []string{l5 + `port "0": port must be 1-65535`}, nil},
		{"port too big", tcp("127.0.0.1:70000"), []string{l5 + `port "70000": port must be 1-65535`}, nil},
		{"no port", tcp("127.0.0.1"), []string{l5 + `"127.0.0.1" has no port; port must be 1-65535`}, nil},
		{"garbage", tcp("not an address"), []string{l5 + `"not an address" is not an address like "127.0.0.1:8080"`}, nil},
		{"T22 non-loopback", tcp("192.0.2.1:80"), []string{l5 + `192.0.2.1 is not a loopback address; set public = true to listen on it`}, nil},
		{"v6 loopback", tcp("[::1]:80"), nil, nil},
		{"owner on TCP", sock("listen = \"127.0.0.1:80\"\nowner = \"daemon\"\nmode = \"0660\""), []string{
			`services.toml:6: services.api.sockets[0].owner: owner applies only to Unix sockets (path), not TCP`,
			`services.toml:7: services.api.sockets[0].mode: mode applies only to Unix sockets (path), not TCP`,
		}, nil},
		{"overlap", sock("listen = \"0.0.0.0:80\"\npublic = true\n[[services.api.sockets]]\nname = \"b\"\nlisten = \"127.0.0.1:80\""), []string{
			`services.toml:9: services.api.sockets[1].listen: 127.0.0.1:80 overlaps services.api.sockets[0] (services.toml:5)`,
		}, nil},
		{"v6 wildcard covers v4", sock("listen = \"[::]:80\"\npublic = true\n[[services.api.sockets]]\nname = \"b\"\nlisten = \"127.0.0.1:80\""), []string{
			`services.toml:9: services.api.sockets[1].listen: 127.0.0.1:80 overlaps services.api.sockets[0] (services.toml:5)`,
		}, nil},
		{"no overlap across ports or families", sock("listen = \"0.0.0.0:80\"\npublic = true\n[[services.api.sockets]]\nname = \"b\"\nlisten = \"[::1]:80\"\n[[services.api.sockets]]\nname = \"c\"\nlisten = \"127.0.0.1:81\""), nil, nil},
	})
}

func TestBadBacklogAndNames(t *testing.T) {
	b6 := "services.toml:6: services.api.sockets[0].backlog: "
	n5 := "services.toml:5: services.api.sockets[0].name: "
	unix := func(k string) string { return sock(k + "\npath = \"/run/udsv-config-test/a.sock\"") }
	backlog := func(n string) string { return sock("path = \"/run/udsv-config-test/a.sock\"\nbacklog = " + n) }
	somax := readSomaxconn()
	if somax == 0 {
		t.Fatal("cannot read net.core.somaxconn")
	}
	runCases(t, []badCase{
		{"backlog 0", backlog("0"), []string{b6 + "0 is out of range 1-65535"}, nil},
		{"backlog -1", backlog("-1"), []string{b6 + "-1 is out of range 1-65535"}, nil},
		{"backlog 100000", backlog("100000"), []string{b6 + "100000 is out of range 1-65535"}, nil},
		{"backlog string", backlog(`"16"`), []string{b6 + "must be an integer, not a string"}, nil},
		{"backlog over somaxconn", backlog(strconv.Itoa(somax + 1)), nil,
			[]string{b6 + "kernel caps the backlog at " + strconv.Itoa(somax) + " (net.core.somaxconn)"}},
		{"colon", unix(`name = "a:b"`), []string{n5 + `"a:b" is not a valid LISTEN_FDNAMES entry: 1-255 printable ASCII characters, no ':'`}, nil},
		{"control character", unix(`name = "a\tb"`), []string{n5 + `"a\tb" is not a valid LISTEN_FDNAMES entry: 1-255 printable ASCII characters, no ':'`}, nil},
		{"empty name", unix(`name = ""`), []string{n5 + `"" is not a valid LISTEN_FDNAMES entry: 1-255 printable ASCII characters, no ':'`}, nil},
		{"256 characters", unix(`name = "` + strings.Repeat("n", 256) + `"`), []string{n5 + `"` + strings.Repeat("n", 256) + `" is not a valid LISTEN_FDNAMES entry: 1-255 printable ASCII characters, no ':'`}, nil},
		{"duplicate name", sock("listen = \"127.0.0.1:80\"\n[[services.api.sockets]]\nlisten = \"127.0.0.1:81\""), []string{
			`services.toml:6: services.api.sockets[1].name: "api" is not a valid LISTEN_FDNAMES entry: services.api.sockets[0] already uses it (sockets are named after the service by default)`,
		}, nil},
		{"two on stdin", sock("listen = \"127.0.0.1:80\"\nstdin = true\n[[services.api.sockets]]\nname = \"b\"\nlisten = \"127.0.0.1:81\"\nstdin = true"), []string{
			`services.toml:10: services.api.sockets[1].stdin: only one socket can be stdin; services.api.sockets[0] already is`,
		}, nil},
		{"unknown socket in a placeholder", sock("listen = \"127.0.0.1:80\"\n[services.api.environment]\nX = \"%{socket.nope.fd}\""), []string{
			`services.toml:7: services.api.environment.X: %{socket.nope.fd}: the service has no socket named "nope" (its sockets: api)`,
		}, nil},
		{"unknown placeholder field", sock("listen = \"127.0.0.1:80\"\n[services.api.environment]\nX = \"%{socket.api.port}\""), []string{
			`services.toml:7: services.api.environment.X: %{socket.api.port}: unknown field "port"; want one of fd, path, address`,
		}, nil},
		{"path of a TCP socket", sock("listen = \"127.0.0.1:80\"\n[services.api.environment]\nX = \"%{socket.api.path}\""), []string{
			`services.toml:7: services.api.environment.X: %{socket.api.path}: socket "api" is TCP and has no path; use .address`,
		}, nil},
		{"placeholder without a field", sock("listen = \"127.0.0.1:80\"\n[services.api.environment]\nX = \"%{socket.api}\""), []string{
			`services.toml:7: services.api.environment.X: %{socket.api}: want %{socket.NAME.fd}, %{socket.NAME.path} or %{socket.NAME.address}`,
		}, nil},
		{"unclosed placeholder", sock("listen = \"127.0.0.1:80\"\n[services.api.environment]\nX = \"a%{socket.api.fd\""), []string{
			`services.toml:7: services.api.environment.X: "%{socket.api.fd": a %{socket. without its }; write %%{socket. for a literal one`,
		}, nil},
		{"other %{ text stays", sock("listen = \"127.0.0.1:80\"\n[services.api.environment]\nX = \"%{http_code} %{home}\""), nil, nil},
		{"stdin not a bool", sock("listen = \"127.0.0.1:80\"\nstdin = 0"), []string{
			`services.toml:6: services.api.sockets[0].stdin: must be true or false, not an integer`,
		}, nil},
	})
}

// TestBadServices covers users, groups, command, environment, durations,
// signals, restart and names.
func TestBadServices(t *testing.T) {
	svc := func(lines string) string { return "[services.api]\n" + lines }
	runCases(t, []badCase{
		{"unknown user", svc("command = [\"true\"]\nuser = \"nosuch\""), []string{`services.toml:3: services.api.user: unknown user "nosuch"`}, nil},
		{"unknown uid", svc("command = [\"true\"]\nuser = 4000000"), []string{`services.toml:3: services.api.user: unknown user "4000000"`}, nil},
		{"missing user and command", svc(""), []string{
			`services.toml:1: services.api.user: is required`,
			`services.toml:1: services.api.command: is required`,
		}, nil},
		{"T21 root by name", svc("command = [\"true\"]\nuser = \"root\""), []string{`services.toml:3: services.api.user: refusing to run as root; set allow_root = true`}, nil},
		{"T21 root by id", svc("command = [\"true\"]\nuser = \"0\""), []string{`services.toml:3: services.api.user: refusing to run as root; set allow_root = true`}, nil},
		{"T21 root allowed", svc("command = [\"true\"]\nuser = 0\nallow_root = true"), nil, nil},
		{"unknown group", base + `group = "nosuch"`, []string{`services.toml:4: services.api.group: unknown group "nosuch"`}, nil},
		{"unknown supplementary group", base + `supplementary_groups = ["adm", "nosuch"]`, []string{`services.toml:4: services.api.supplementary_groups[1]: unknown group "nosuch"`}, nil},
		{"unknown socket owner", sock("path = \"/run/udsv-config-test/a.sock\"\nowner = \"nosuch\""), []string{`services.toml:6: services.api.sockets[0].owner: unknown user "nosuch"`}, nil},
		{"T11 risky groups", base + "supplementary_groups = [\"sudo\", \"shadow\", \"root\", \"staff\"]\ngroup = \"disk\"", nil, []string{
			`services.toml:4: services.api.supplementary_groups[0]: group "sudo" is root-equivalent or reads secrets; a compromised service would inherit that`,
			`services.toml:4: services.api.supplementary_groups[1]: group "shadow" is root-equivalent or reads secrets; a compromised service would inherit that`,
			`services.toml:4: services.api.supplementary_groups[2]: group "root" is root-equivalent or reads secrets; a compromised service would inherit that`,
			`services.toml:5: services.api.group: group "disk" is root-equivalent or reads secrets; a compromised service would inherit that`,
		}},
		{"T21 nobody", svc("command = [\"true\"]\nuser = \"nobody\""), nil, []string{
			`services.toml:3: services.api.user: nobody is shared with unrelated daemons; give the service its own user`,
		}},
		{"T21 shared user", base + "[services.web]\ncommand = [\"true\"]\nuser = \"daemon\"", nil, []string{
			`services.toml:6: services.web.user: user "daemon" is also the user of services.api; the two can signal each other and read each other's /proc`,
		}},
		{"empty command", svc("command = []\nuser = \"daemon\""), []string{`services.toml:2: services.api.command: must not be empty`}, nil},
		{"empty argv0", svc("command = [\"\"]\nuser = \"daemon\""), []string{`services.toml:2: services.api.command[0]: must not be empty`}, nil},
		{"command not an array", svc("command = \"true\"\nuser = \"daemon\""), []string{`services.toml:2: services.api.command: must be an array of strings, not a string`}, nil},
		{"command element type", svc("command = [\n  \"true\",\n  3,\n]\nuser = \"daemon\""), []string{`services.toml:4: services.api.command[1]: must be a string, not an integer`}, nil},
		{"not in PATH", svc("command = [\"udsv-no-such-program\"]\nuser = \"daemon\""), []string{`services.toml:2: services.api.command[0]: "udsv-no-such-program" not found in PATH "/usr/local/bin:/usr/bin:/bin"`}, nil},
		{"service PATH", svc("command = [\"true\"]\nuser = \"daemon\"\nenvironment = { PATH = \"/nonexistent:relative\" }"), []string{`services.toml:2: services.api.command[0]: "true" not found in PATH "/nonexistent:relative"`}, nil},
		{"missing absolute", svc("command = [\"/usr/bin/udsv-nope\"]\nuser = \"daemon\""), []string{`services.toml:2: services.api.command[0]: stat /usr/bin/udsv-nope: no such file or directory`}, nil},
		{"not executable", svc("command = [\"/etc/passwd\"]\nuser = \"daemon\""), []string{`services.toml:2: services.api.command[0]: "/etc/passwd" is not executable by user "daemon"`}, nil},
		{"directory", svc("command = [\"/usr/bin\"]\nuser = \"daemon\""), []string{`services.toml:2: services.api.command[0]: "/usr/bin" is a directory, not a regular file`}, nil},
		{"relative with slash", svc("command = [\"bin/app\"]\nuser = \"daemon\""), []string{`services.toml:2: services.api.command[0]: "bin/app" must be absolute, or a bare name looked up in PATH`}, nil},
		{"T14 LISTEN_FDS", base + `environment = { LISTEN_FDS = "1" }`, []string{`services.toml:4: services.api.environment.LISTEN_FDS: LISTEN_FDS is set by udsvisor`}, nil},
		{"T14 LISTEN_PID", base + "[services.api.environment]\nLISTEN_PID = \"1\"", []string{`services.toml:5: services.api.environment.LISTEN_PID: LISTEN_PID is set by udsvisor`}, nil},
		{"T14 LISTEN_PIDFDID", base + "[services.api.environment]\nLISTEN_PIDFDID = \"1\"", []string{`services.toml:5: services.api.environment.LISTEN_PIDFDID: LISTEN_PIDFDID is set by udsvisor`}, nil},
		{"T14 LISTEN_FDNAMES", base + `environment.LISTEN_FDNAMES = "x"`, []string{`services.toml:4: services.api.environment.LISTEN_FDNAMES: LISTEN_FDNAMES is set by udsvisor`}, nil},
		{"T14 NOTIFY_SOCKET", base + `environment = { NOTIFY_SOCKET = "/x" }`, []string{`services.toml:4: services.api.environment.NOTIFY_SOCKET: NOTIFY_SOCKET is set by udsvisor`}, nil},
		{"env key with =", base + `environment = { "A=B" = "x" }`, []string{`services.toml:4: services.api.environment."A=B": "A=B" is not a valid variable name (empty, or holds '=' or NUL)`}, nil},
		{"env empty key", base + `environment = { "" = "x" }`, []string{`services.toml:4: services.api.environment."": "" is not a valid variable name (empty, or holds '=' or NUL)`}, nil},
		{"env NUL value", base + `environment = { A = "x\u0000y" }`, []string{`services.toml:4: services.api.environment.A: value contains a NUL byte`}, nil},
		{"env integer", base + `environment = { PORT = 8080 }`, []string{`services.toml:4: services.api.environment.PORT: must be a string, not an integer`}, nil},
		{"duration without unit", base + `stop_timeout = "10"`, []string{`services.toml:4: services.api.stop_timeout: "10" needs a unit, e.g. "10s"`}, nil},
		{"duration integer", base + `min_uptime = 10`, []string{`services.toml:4: services.api.min_uptime: 10 needs a unit, e.g. "10s"`}, nil},
		{"negative duration", base + `stop_timeout = "-1s"`, []string{`services.toml:4: services.api.stop_timeout: "-1s" must be positive`}, nil},
		{"zero duration", base + `stop_timeout = "0s"`, []string{`services.toml:4: services.api.stop_timeout: "0s" must be positive`}, nil},
		{"instances zero", base + `instances = 0`, []string{`services.toml:4: services.api.instances: 0 must be 1 to 256`}, nil},
		{"restart_mode unknown", base + `restart_mode = "rolling"`, []string{`services.toml:4: services.api.restart_mode: "rolling" must be stop-start or overlap`}, nil},
		{"T14 UDSVISOR_INSTANCE", base + `environment = { UDSVISOR_INSTANCE = "1" }`, []string{`services.toml:4: services.api.environment.UDSVISOR_INSTANCE: UDSVISOR_INSTANCE is set by udsvisor`}, nil},
		{"start unknown", base + `start = "lazy"`, []string{`services.toml:4: services.api.start: "lazy" must be immediate or on-demand`}, nil},
		{"idle_stop without on-demand", base + `idle_stop = "10m"`, []string{`services.toml:4: services.api.idle_stop: needs start = "on-demand": a stopped service must be started again by the next connection`}, nil},
		{"on-demand without a socket", base + `start = "on-demand"`, []string{`services.toml:4: services.api.start: an on-demand service needs a socket: a connection to it is what starts the service`}, nil},
		{"on-demand with idle_stop", base + "start = \"on-demand\"\nidle_stop = \"1m\"\n[[services.api.sockets]]\npath = \"/run/x/api.sock\"", nil, nil},
		{"ready unknown", base + `ready = "listening"`, []string{`services.toml:4: services.api.ready: "listening" must be started or notify`}, nil},
		{"watchdog without notify", base + `watchdog = "30s"`, []string{`services.toml:4: services.api.watchdog: needs ready = "notify": only a process that speaks sd_notify can report in time`}, nil},
		{"start_timeout without notify", base + "ready = \"started\"\nstart_timeout = \"5s\"", []string{`services.toml:5: services.api.start_timeout: needs ready = "notify": only a process that speaks sd_notify can report in time`}, nil},
		{"zero watchdog", base + "ready = \"notify\"\nwatchdog = \"0s\"", []string{`services.toml:5: services.api.watchdog: "0s" must be positive`}, nil},
		{"T14 WATCHDOG_USEC", base + `environment = { WATCHDOG_USEC = "1" }`, []string{`services.toml:4: services.api.environment.WATCHDOG_USEC: WATCHDOG_USEC is set by udsvisor`}, nil},
		{"bad duration", base + `stop_timeout = "soon"`, []string{`services.toml:4: services.api.stop_timeout: "soon" is not a duration like "10s"`}, nil},
		{"unknown signal", base + `stop_signal = "SIGFOO"`, []string{`services.toml:4: services.api.stop_signal: unknown signal "SIGFOO"`}, nil},
		{"unknown signal number", base + `stop_signal = 99`, []string{`services.toml:4: services.api.stop_signal: unknown signal 99`}, nil},
		{"restart", base + `restart = "sometimes"`, []string{`services.toml:4: services.api.restart: "sometimes" must be always, on-failure or never`}, nil},
		{"start_limit", base + `start_limit = -1`, []string{`services.toml:4: services.api.start_limit: -1 must be 0 (never give up) or a positive count`}, nil},
		{"working_dir relative", base + `working_dir = "srv"`, []string{`services.toml:4: services.api.working_dir: "srv" must be absolute`}, nil},
		{"working_dir unclean", base + `working_dir = "/srv/"`, []string{`services.toml:4: services.api.working_dir: not a clean path; did you mean "/srv"?`}, nil},
		{"allow_root type", base + `allow_root = "yes"`, []string{`services.toml:4: services.api.allow_root: must be true or false, not a string`}, nil},
		{"slash in name", "[services.\"a/b\"]\ncommand = [\"true\"]\nuser = \"daemon\"", []string{`services.toml:1: services."a/b": "a/b" is not a valid service name; names are [A-Za-z0-9_.@-]{1,64}`}, nil},
		{"dotdot name", "[services.\"..\"]\ncommand = [\"true\"]\nuser = \"daemon\"", []string{`services.toml:1: services."..": ".." is not a valid service name; names are [A-Za-z0-9_.@-]{1,64}`}, nil},
		{"space in name", "[services.\"a b\"]\ncommand = [\"true\"]\nuser = \"daemon\"", []string{`services.toml:1: services."a b": "a b" is not a valid service name; names are [A-Za-z0-9_.@-]{1,64}`}, nil},
		{"long name", "[services." + strings.Repeat("a", 65) + "]\ncommand = [\"true\"]\nuser = \"daemon\"", []string{`services.toml:1: services.` + strings.Repeat("a", 65) + `: "` + strings.Repeat("a", 65) + `" is not a valid service name; names are [A-Za-z0-9_.@-]{1,64}`}, nil},
		{"dotted name is fine", "[services.\"api.v2@x\"]\ncommand = [\"true\"]\nuser = \"daemon\"", nil, nil},
		{"service not a table", "[services]\napi = \"x\"", []string{`services.toml:2: services.api: must be a table like [services.api], not a string`}, nil},
		{"sockets not tables", base + `sockets = "x"`, []string{`services.toml:4: services.api.sockets: must be an array of tables ([[services.api.sockets]]), not a string`}, nil},
	})
}

// Sockets whose directory udsvisor creates must agree on its group and
// mode: it is made once, and the other group might not get through.
func TestSharedNewDirectory(t *testing.T) {
	two := func(groupB, modeB string) string {
		return base + `[[services.api.sockets]]
path = "/run/udsv-config-new/a.sock"
directory_mode = "0750"
[services.web]
command = ["true"]
user = "daemon"
[[services.web.sockets]]
path = "/run/udsv-config-new/b.sock"
group = "` + groupB + `"
directory_mode = "` + modeB + `"
`
	}
	runCases(t, []badCase{
		{"same group and mode", two("daemon", "0750"), nil, []string{`services.toml:9: services.web.user: user "daemon" is also the user of services.api; the two can signal each other and read each other's /proc`}},
		{"another group", two("adm", "0750"), nil, []string{
			`services.toml:9: services.web.user: user "daemon" is also the user of services.api; the two can signal each other and read each other's /proc`,
			`services.toml:10: services.web.sockets[0]: shares directory /run/udsv-config-new, which udsvisor creates once, with services.api.sockets[0] (services.toml:4): group daemon and directory_mode 0750 there, adm and 0750 here; give them the same, or one socket's users may not reach it`,
		}},
	})
}

func TestBadSupervisor(t *testing.T) {
	runCases(t, []badCase{
		{"unknown control_group", "[supervisor]\ncontrol_group = \"nosuch\"", []string{`services.toml:2: supervisor.control_group: unknown group "nosuch"`}, nil},
		{"control_mode 0666", "[supervisor]\ncontrol_mode = \"0666\"", nil, []string{`services.toml:2: supervisor.control_mode: "0666" lets every local user connect; the peer check still applies`}},
		// status_group's members pass the file mode as others only.
		{"status_group without others' bits", "[supervisor]\nstatus_group = \"adm\"", nil, []string{`services.toml:2: supervisor.status_group: its members cannot connect to the control socket, whose mode 0660 admits only root and control_group; set control_mode = "0666" (the peer check still refuses everyone else)`}},
		{"status_group with 0666", "[supervisor]\nstatus_group = \"adm\"\ncontrol_mode = \"0666\"", nil, nil},
		{"status_group is control_group", "[supervisor]\nstatus_group = \"adm\"\ncontrol_group = \"adm\"", nil, nil},
		{"control_mode integer", "[supervisor]\ncontrol_mode = 660", []string{`services.toml:2: supervisor.control_mode: control_mode must be a string like "0660"; 660 is decimal (octal 1224)`}, nil},
		{"control socket in /tmp", "[supervisor]\ncontrol_socket = \"/tmp/c.sock\"", []string{`services.toml:2: supervisor.control_socket: /tmp is world-writable; others could squat or replace the socket`}, nil},
		{"T16 www-data control group", "[supervisor]\ncontrol_group = \"www-data\"", nil, []string{`services.toml:2: supervisor.control_group: www-data is a web server's group; a confused deputy could reach the control socket`}},
		{"log_format", "[supervisor]\nlog_format = \"xml\"", []string{`services.toml:2: supervisor.log_format: "xml" must be console or json`}, nil},
		{"supervisor not a table", "supervisor = 1", []string{`services.toml:1: supervisor: must be a table, not an integer`}, nil},
		{"same as control socket", sock(`path = "/run/udsvisor/control.sock"`), []string{p5 + `same socket as supervisor.control_socket (default)`}, nil},
		{"T28 the root-only control socket", sock(`path = "/run/udsvisor/control.sock.root"`), []string{p5 + `same socket as the root-only control socket of supervisor.control_socket (default)`}, nil},
		{"same as configured control socket", "[supervisor]\ncontrol_socket = \"/run/udsv-config-test/c.sock\"\n" +
			"[services.api]\ncommand = [\"true\"]\nuser = \"daemon\"\n[[services.api.sockets]]\npath = \"/run/udsv-config-test/c.sock\"",
			[]string{`services.toml:7: services.api.sockets[0].path: same socket as supervisor.control_socket (services.toml:2)`}, nil},
	})
}

func TestBadTOML(t *testing.T) {
	runCases(t, []badCase{
		{"syntax", base + "mode = \n", []string{`services.toml:4: expected value but found '\n' instead`}, nil},
		{"duplicate table", base + "[services.api]\n", []string{`services.toml:4: key 'services.api' has already been defined`}, nil},
		{"duplicate key", base + "user = \"daemon\"\n", []string{`services.toml:4: key 'services.api.user' has already been defined`}, nil},
		{"unknown top-level key", "logging = 1\n" + base, []string{`services.toml:1: logging: unknown key`}, nil},
		{"unknown service key", base + "comand = [\"x\"]", []string{`services.toml:4: services.api.comand: unknown key`}, nil},
		{"unknown key in the 2nd socket", sock("path = \"/run/udsv-config-test/a.sock\"\n\n[[services.api.sockets]]\nname = \"b\"\npath = \"/run/udsv-config-test/b.sock\"\nmdoe = \"0660\"\n\n[[services.api.sockets]]\nname = \"c\"\nlisten = \"127.0.0.1:80\"\n"),
			[]string{`services.toml:10: services.api.sockets[1].mdoe: unknown key`}, nil},
		{"unknown table", base + "[services.api.rlimits]\nnofile = 1", []string{`services.toml:4: services.api.rlimits: unknown key`}, nil},
		{"wrong type", base + `restart = 1`, []string{`services.toml:4: services.api.restart: must be a string, not an integer`}, nil},
	})
}

// TestDuplicateSockets covers the same path across services, including a
// spelling that cleans to the same path.
func TestDuplicateSockets(t *testing.T) {
	src := `[services.web]
command = ["true"]
user = "daemon"
[[services.web.sockets]]
path = "/run/udsv-config-test/x.sock"

[services.api]
command = ["true"]
user = "www-data"
[[services.api.sockets]]
path = "/run/udsv-config-test/x.sock"
[[services.api.sockets]]
name = "b"
path = "/run/udsv-config-test/./x.sock"
`
	want := []string{
		`services.toml:11: services.api.sockets[0].path: same socket as services.web.sockets[0] (services.toml:5)`,
		`services.toml:14: services.api.sockets[1].path: not a clean path; did you mean "/run/udsv-config-test/x.sock"?`,
		`services.toml:14: services.api.sockets[1].path: same socket as services.web.sockets[0] (services.toml:5)`,
	}
	if got := parseErrors(t, src); !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
