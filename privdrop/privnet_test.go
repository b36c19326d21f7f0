// SPDX-License-Identifier: Apache-2.0

//go:build linux

package privdrop_test

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// TestPrivateNetwork launches the probe with and without
// Spec.PrivateNetwork. With it, the probe's network namespace is not the
// test's; lo is its only interface and is up; 127.0.0.1 and ::1 work
// there; its listener on 127.0.0.1 is in its namespace's /proc/net/tcp
// and not in the host's; a connect to a port the test listens on in the
// host's namespace is refused; and the socket at fd 3, made in the
// host's namespace, still takes the test's connection. Without it, the
// probe shares the test's namespace, interfaces and listener table, and
// its connect to the test's port goes through, which shows that the
// checks above can fail.
func TestPrivateNetwork(t *testing.T) {
	u := testutil.EnsureUser(t, "udsv-a")
	hostNS := netNS(t, "self")
	hostIfaces := ifaceNames(t)
	// A port that answers in the test's namespace only.
	host, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()

	for _, private := range []bool{true, false} {
		t.Run(fmt.Sprintf("PrivateNetwork=%v", private), func(t *testing.T) {
			spec := probeSpec(t, u, 1, "web")
			spec.PrivateNetwork = private
			spec.Args = []string{"probe", "ifaces", "dial=" + host.Addr().String(),
				"serve=127.0.0.1:0", "serve=[::1]:0", "accept", "block"}
			file, addr := tcpListener(t)
			s, rep := mustStart(t, spec, []*os.File{file}, launchOpts{})
			pid := s.cmd.Process.Pid

			ns := netNS(t, strconv.Itoa(pid))
			if (ns != hostNS) != private {
				t.Errorf("probe's network namespace %s, the test's %s", ns, hostNS)
			}

			var names []string
			for _, i := range rep.Ifaces {
				names = append(names, i.Name)
			}
			wantNames := hostIfaces
			if private {
				wantNames = []string{"lo"}
			}
			if !slices.Equal(names, wantNames) {
				t.Errorf("probe sees interfaces %q, want %q", names, wantNames)
			}
			if private && len(rep.Ifaces) == 1 {
				flags := strings.Split(rep.Ifaces[0].Flags, "|")
				if !slices.Contains(flags, "up") || !slices.Contains(flags, "running") {
					t.Errorf("lo has flags %s, want up and running", rep.Ifaces[0].Flags)
				}
			}

			// The host may lack ::1; a new namespace has it whenever
			// the kernel has IPv6.
			if len(rep.Serve) != 2 {
				t.Fatalf("probe served %+v, want two listeners", rep.Serve)
			}
			for i, sv := range rep.Serve {
				if sv.Err != "" && (private || i == 0) {
					t.Errorf("serve %s in the probe: %s", sv.Addr, sv.Err)
				}
			}
			if rep.Serve[0].Err == "" {
				ino := listenerInode(t, fmt.Sprintf("/proc/%d/net/tcp", pid), rep.Serve[0].Port)
				fds, err := testutil.ProcFDs(pid)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Contains(slices.Collect(maps.Values(fds)), "socket:["+ino+"]") {
					t.Errorf("listener socket:[%s] on port %d is not the probe's: fds %v", ino, rep.Serve[0].Port, fds)
				}
				if inHost := tableHasInode(t, "/proc/self/net/tcp", ino); inHost == private {
					t.Errorf("probe's listener on 127.0.0.1:%d in the host's /proc/net/tcp: %v, want %v", rep.Serve[0].Port, inHost, !private)
				}
			}
			if private && rep.Serve[1].Err == "" {
				ino := listenerInode(t, fmt.Sprintf("/proc/%d/net/tcp6", pid), rep.Serve[1].Port)
				if tableHasInode(t, "/proc/self/net/tcp6", ino) {
					t.Errorf("probe's listener on [::1]:%d is in the host's /proc/net/tcp6", rep.Serve[1].Port)
				}
			}

			wantDial := "ok"
			if private {
				wantDial = unix.ECONNREFUSED.Error()
			}
			if rep.Dial != wantDial {
				t.Errorf("probe's connect to the test's %s: %q, want %q", host.Addr(), rep.Dial, wantDial)
			}

			// fd 3 was made in the test's namespace and works there.
			c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
			if err != nil {
				t.Fatalf("connect to the probe's fd 3 at %s: %v", addr, err)
			}
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			if line, err := bufio.NewReader(c).ReadString('\n'); line != "accepted\n" {
				t.Errorf("probe's answer on fd 3: %q (%v), want \"accepted\\n\"", line, err)
			}
		})
	}
}

// TestPrivateNetworkUnshareDenied checks that a launch whose namespace
// cannot be made fails, naming the step, and that the command never runs
// in the host's namespace instead.
func TestPrivateNetworkUnshareDenied(t *testing.T) {
	u := testutil.EnsureUser(t, "udsv-a")
	spec := probeSpec(t, u, 0, "")
	spec.PrivateNetwork = true
	deny := &denial{unix.SYS_UNSHARE, unix.EPERM, func() error { return unix.Unshare(0) }}
	s, err := launch(t, spec, nil, launchOpts{deny: deny})
	if s == nil {
		t.Fatalf("start: %v", err)
	}
	const want = "unshare CLONE_NEWNET: operation not permitted"
	if err == nil {
		// The probe blocks: reading its output would wait for ever.
		t.Fatalf("AfterStart succeeded: the command runs in the host's namespace; want %q", want)
	}
	if err.Error() != want {
		t.Errorf("AfterStart: %q, want %q", err, want)
	}
	if !errors.Is(err, fs.ErrPermission) {
		t.Errorf("AfterStart: %v is not %v", err, fs.ErrPermission)
	}
	if out := drain(t, s.stdout); out != "" {
		t.Errorf("the command ran: %q", out)
	}
	if code := exitCode(t, s); code != 127 {
		t.Errorf("helper exit status %d, want 127", code)
	}
}

// netNS is /proc/WHO/ns/net's target, e.g. "net:[4026531840]".
func netNS(t *testing.T, who string) string {
	t.Helper()
	ns, err := os.Readlink("/proc/" + who + "/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// ifaceNames lists the test's network interfaces.
func ifaceNames(t *testing.T) []string {
	t.Helper()
	list, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range list {
		names = append(names, i.Name)
	}
	return names
}

// tcpListener makes a blocking TCP listener on 127.0.0.1 in the test's
// namespace and returns it with its address.
func tcpListener(t *testing.T) (*os.File, string) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "tcp")
	t.Cleanup(func() { f.Close() })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 16); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return f, fmt.Sprintf("127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port)
}

// procNetTCP reads a /proc/net/tcp or tcp6 table: for each socket, its
// local port, state (0A is LISTEN) and inode.
func procNetTCP(t *testing.T, table string) [][3]string {
	t.Helper()
	b, err := os.ReadFile(table)
	if err != nil {
		t.Fatal(err)
	}
	var rows [][3]string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n")[1:] {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		f := strings.Fields(line)
		if len(f) < 10 {
			t.Fatalf("%s: short line %q", table, line)
		}
		_, port, _ := strings.Cut(f[1], ":")
		rows = append(rows, [3]string{port, f[3], f[9]})
	}
	return rows
}

// listenerInode is the inode of the listener on port in table.
func listenerInode(t *testing.T, table string, port int) string {
	t.Helper()
	hex := fmt.Sprintf("%04X", port)
	for _, r := range procNetTCP(t, table) {
		if r[0] == hex && r[1] == "0A" {
			return r[2]
		}
	}
	t.Fatalf("no listener on port %d in %s", port, table)
	return ""
}

// tableHasInode reports whether a socket with inode ino is in table.
func tableHasInode(t *testing.T, table, ino string) bool {
	t.Helper()
	return slices.ContainsFunc(procNetTCP(t, table), func(r [3]string) bool { return r[2] == ino })
}
