// SPDX-License-Identifier: Apache-2.0

//go:build linux

package peer

import (
	"encoding/binary"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestParseXMLRPCStruct(t *testing.T) {
	answer := `<?xml version='1.0'?>
<methodResponse><params><param><value><struct>
<member><name>name</name><value><string>backend</string></value></member>
<member><name>pid</name><value><int>4242</int></value></member>
<member><name>statename</name><value><string>RUNNING</string></value></member>
<member><name>description</name><value>pid 4242, uptime 0:00:03</value></member>
</struct></value></param></params></methodResponse>`
	got, err := parseXMLRPCStruct(strings.NewReader(answer))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"name": "backend", "pid": "4242", "statename": "RUNNING", "description": "pid 4242, uptime 0:00:03"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}

	fault := `<?xml version='1.0'?><methodResponse><fault><value><struct>
<member><name>faultCode</name><value><int>10</int></value></member>
<member><name>faultString</name><value><string>BAD_NAME: nosuch</string></value></member>
</struct></value></fault></methodResponse>`
	if _, err := parseXMLRPCStruct(strings.NewReader(fault)); err == nil || !strings.Contains(err.Error(), "BAD_NAME") {
		t.Errorf("fault: err = %v, want BAD_NAME", err)
	}
}

// event builds one netlink message carrying a proc connector event.
func event(what, tgid uint32) []byte {
	b := make([]byte, nlmsgHdrLen+cnMsgLen+procEventHeaderLen+8)
	ne := binary.NativeEndian
	ne.PutUint32(b, uint32(len(b)))
	pe := b[nlmsgHdrLen+cnMsgLen:]
	ne.PutUint32(pe, what)
	ne.PutUint32(pe[procEventHeaderLen:], tgid+1000) // the thread
	ne.PutUint32(pe[procEventHeaderLen+4:], tgid)
	return b
}

func TestExecPids(t *testing.T) {
	const fork = 0x1
	var msgs []byte
	msgs = append(msgs, event(procEventExec, 11)...)
	msgs = append(msgs, event(fork, 12)...)
	msgs = append(msgs, event(procEventExec, 13)...)
	if got, want := execPids(msgs), []uint32{11, 13}; !slices.Equal(got, want) {
		t.Errorf("execPids = %v, want %v", got, want)
	}
	if got := execPids(msgs[:10]); len(got) != 0 {
		t.Errorf("a truncated header gave %v", got)
	}
	bad := event(procEventExec, 14)
	binary.NativeEndian.PutUint32(bad, 1<<20) // longer than the datagram
	if got := execPids(bad); len(got) != 0 {
		t.Errorf("a bad length gave %v", got)
	}
}

func TestShellJoin(t *testing.T) {
	argv := []string{"/bin/echo", "it's", "a b", "$HOME"}
	out, err := exec.Command("/bin/sh", "-c", "printf '%s|' "+shellJoin(argv[1:])).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), "it's|a b|$HOME|"; got != want {
		t.Errorf("the shell read %q, want %q", got, want)
	}
}

func TestArgv(t *testing.T) {
	b := Backend("web", "/x/backend", "/run/x/web.sock")
	for h, want := range map[Handoff]string{
		FD3:  "/x/backend",
		FD0:  "/x/backend -fd 0",
		Bind: "/x/backend -bind /run/x/web.sock",
	} {
		if got := strings.Join(b.argv(h, "/x/sleep"), " "); got != want {
			t.Errorf("backend under %d: %q, want %q", h, got, want)
		}
		if got := b.comm(h); got != "backend" {
			t.Errorf("backend comm under %d: %q", h, got)
		}
	}
	hold := Holder("h", "/run/x/h.sock", "/x/backend")
	if got := strings.Join(hold.argv(FD3, "/x/sleep"), " "); got != "/x/sleep infinity" {
		t.Errorf("holder under FD3: %q", got)
	}
	bound := hold.argv(Bind, "/x/sleep")
	if binder() != "" {
		if len(bound) != 4 || bound[1] != "/run/x/h.sock" || bound[2] != "/x/sleep" || hold.comm(Bind) != "sleep" {
			t.Errorf("holder under Bind: %q, comm %q", bound, hold.comm(Bind))
		}
	} else if strings.Join(bound, " ") != "/x/backend -bind /run/x/h.sock" || hold.comm(Bind) != "backend" {
		t.Errorf("holder under Bind without s6: %q, comm %q", bound, hold.comm(Bind))
	}
	cmd := Command("crash", "/x/crash.sh", "-v")
	if got := strings.Join(cmd.argv(FD0, "/x/sleep"), " "); got != "/x/crash.sh -v" || cmd.comm(FD0) != "" {
		t.Errorf("command: %q, comm %q", got, cmd.comm(FD0))
	}
}
