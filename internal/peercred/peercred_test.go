// SPDX-License-Identifier: Apache-2.0

package peercred

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// A connection from this process reads as this process, with and without
// the kernel's group list. (Other users, and groups the group database
// does not give them, are control's TestT16PeerAuthorization.)
func TestReadSelf(t *testing.T) {
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	groups, err := os.Getgroups()
	if err != nil {
		t.Fatal(err)
	}
	for _, opts := range []Options{{}, {NoPeerGroups: true}} {
		cr, err := Read(server, opts)
		if err != nil {
			t.Fatalf("%+v: %v", opts, err)
		}
		if int(cr.UID) != os.Getuid() || int(cr.GID) != os.Getgid() || int(cr.PID) != os.Getpid() {
			t.Errorf("%+v: uid %d gid %d pid %d, want %d %d %d", opts, cr.UID, cr.GID, cr.PID, os.Getuid(), os.Getgid(), os.Getpid())
		}
		for _, g := range groups {
			if !cr.InGroup(g) {
				t.Errorf("%+v: groups %v lack %d, one of this process's %v", opts, cr.Groups, g, groups)
			}
		}
		if !cr.InGroup(os.Getgid()) || cr.InGroup(-1) {
			t.Errorf("%+v: InGroup wrong for the primary group or -1: %+v", opts, cr)
		}
	}
}

// Something that is not a socket has no peer.
func TestReadNotASocket(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, err := Read(a, Options{}); err == nil {
		t.Error("Read of a net.Pipe succeeded")
	}
}
