// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"net"
	"os"
	"slices"
	"testing"
)

// ownListeners finds a TCP and a Unix listener of the process, and not
// one of those it is told are inherited.
func TestOwnListeners(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	path := t.TempDir() + "/own.sock"
	ux, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ux.Close()
	got, err := ownListeners(os.Getpid(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(got, tcp.Addr().String()) || !slices.Contains(got, "unix:"+path) {
		t.Errorf("ownListeners = %q, want %s and unix:%s among them", got, tcp.Addr(), path)
	}
	f, err := tcp.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err = ownListeners(os.Getpid(), socketInodes([]*os.File{f}))
	if err != nil || slices.Contains(got, tcp.Addr().String()) {
		t.Errorf("with the TCP listener inherited: %q, %v; want it left out", got, err)
	}
}
