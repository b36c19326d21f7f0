// SPDX-License-Identifier: Apache-2.0

//go:build linux

package proxypath

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/udsvisor/udsvisor/bench/internal/proc"
	"github.com/udsvisor/udsvisor/bench/internal/unixhttp"
	"github.com/udsvisor/udsvisor/internal/proctree"
)

// servicesTOML is udsvisor's config: the backend as nobody on a socket
// nginx's workers (group www-data) may connect to, with its own control
// socket so that it never meets another udsvisor's; and the same backend
// as a relay service, binding 127.0.0.1:PORT in its own network
// namespace behind a socket of its own, set up alike in all else (user,
// environment, socket group and modes, stop_timeout).
const servicesTOML = `# Written by bench's proxypath part; removed with its directory.
[supervisor]
control_socket = %[1]q

[services.backend]
command = [%[2]q]
user = "nobody"
# The backend ends at once on SIGTERM; should it not, cleanup need not
# wait the default 10s.
stop_timeout = "2s"

[[services.backend.sockets]]
name = "http"
path = %[3]q
group = "www-data"
mode = "0660"
directory_mode = "0750"

[services.relayed]
command = [%[2]q, "-bind", %[4]q]
user = "nobody"
stop_timeout = "2s"

[[services.relayed.sockets]]
name = "http"
path = %[5]q
group = "www-data"
mode = "0660"
directory_mode = "0750"

[services.relayed.relay]
port = %[6]d
`

// startUdsvisor runs `udsvisor up` on the backend and the relayed one and
// waits until both sockets answer.
func (p *part) startUdsvisor(ctx context.Context) error {
	conf := filepath.Join(p.dir, "services.toml")
	relayAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p.relayPort))
	text := fmt.Sprintf(servicesTOML, filepath.Join(p.dir, "ctl", "control.sock"), p.env.Backend, p.sock,
		relayAddr, p.relaySock, p.relayPort)
	// udsvisor refuses a config that is writable by anyone but root.
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return fmt.Errorf("udsvisor config: %w", err)
	}
	var err error
	p.udsvisor, err = proc.Start("udsvisor up", filepath.Join(p.dir, "udsvisor.log"),
		exec.Command(p.env.Udsvisor, "up", "-c", conf))
	if err != nil {
		return err
	}
	client := unixhttp.Client(p.sock, 0)
	defer client.CloseIdleConnections()
	p.unixPID, err = waitAnswer(ctx, client, "http://backend/", p.udsvisor, 0)
	if err != nil {
		return fmt.Errorf("backend on %s under udsvisor: %w", p.sock, err)
	}
	p.env.Logf("proxypath: backend under udsvisor on %s, pid %d", p.sock, p.unixPID)

	relayClient := unixhttp.Client(p.relaySock, 0)
	defer relayClient.CloseIdleConnections()
	p.relayPID, err = waitAnswer(ctx, relayClient, "http://relayed/", p.udsvisor, 0)
	if err != nil {
		return fmt.Errorf("relayed backend on %s under udsvisor: %w", p.relaySock, err)
	}
	relayPID, err := relayedApp(p.udsvisor.Pid(), p.relayPID)
	if err != nil {
		return fmt.Errorf("relayed backend on %s: %w", p.relaySock, err)
	}
	p.env.Logf("proxypath: backend under udsvisor's relay (pid %d) on %s, pid %d, on %s in its own network namespace",
		relayPID, p.relaySock, p.relayPID, relayAddr)
	return nil
}

// relayedApp checks that app, the pid that answered on the relay
// service's socket, is the app the relay serves: a child of a `udsvisor
// __relay` process that is a child of udsvisor (pid sup), in a network
// namespace other than the benchmark's. It returns the relay's pid.
func relayedApp(sup, app int) (int, error) {
	relay := 0
	for _, pid := range proctree.Children(sup) {
		if slices.Contains(proctree.Children(pid), app) {
			relay = pid
		}
	}
	if relay == 0 {
		return 0, fmt.Errorf("pid %d, which answered, is no grandchild of udsvisor (pid %d)", app, sup)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", relay))
	if err != nil {
		return 0, fmt.Errorf("the relay's command line: %w", err)
	}
	if argv := strings.Split(string(cmdline), "\x00"); len(argv) < 2 || argv[1] != "__relay" {
		return 0, fmt.Errorf("pid %d, which answered, is the child of %q, not of `udsvisor __relay`",
			app, strings.ReplaceAll(strings.TrimRight(string(cmdline), "\x00"), "\x00", " "))
	}
	ours, err1 := os.Readlink("/proc/self/ns/net")
	its, err2 := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", app))
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("network namespaces: %w", err)
	}
	if ours == its {
		return 0, fmt.Errorf("pid %d, which answered, runs in the host's network namespace (%s)", app, its)
	}
	return relay, nil
}

// startTCPBackend runs the same backend binary as nobody, binding
// 127.0.0.1 itself, with the environment udsvisor gives its services (so
// that no GOGC or GOMAXPROCS of bench's makes it a different program).
func (p *part) startTCPBackend(ctx context.Context, nobody ids) error {
	cmd := exec.Command(p.env.Backend, "-bind", p.tcpAddr)
	cmd.Dir = "/"
	cmd.Env = []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"HOME=" + nobody.home, "USER=nobody", "LOGNAME=nobody",
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// An empty Groups drops root's supplementary groups, as udsvisor
		// does for its services.
		Credential: &syscall.Credential{Uid: nobody.uid, Gid: nobody.gid, Groups: []uint32{}},
	}
	var err error
	p.tcpBackend, err = proc.Start("TCP backend", filepath.Join(p.dir, "tcp-backend.log"), cmd)
	if err != nil {
		return err
	}
	client := tcpClient()
	defer client.CloseIdleConnections()
	p.tcpPID, err = waitAnswer(ctx, client, "http://"+p.tcpAddr+"/", p.tcpBackend, p.tcpBackend.Pid())
	if err != nil {
		return fmt.Errorf("backend on %s: %w", p.tcpAddr, err)
	}
	p.env.Logf("proxypath: backend on %s, pid %d", p.tcpAddr, p.tcpPID)
	return nil
}

// ids are a user's numeric ids and home directory.
type ids struct {
	uid, gid uint32
	home     string
}

func lookupIDs(name string) (ids, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return ids{}, fmt.Errorf("user %s: %w", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return ids{}, fmt.Errorf("user %s: ids %s:%s: %w", name, u.Uid, u.Gid, err)
	}
	return ids{uid: uint32(uid), gid: uint32(gid), home: u.HomeDir}, nil
}
