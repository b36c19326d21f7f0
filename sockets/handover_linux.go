// SPDX-License-Identifier: Apache-2.0

package sockets

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Saved is a Listener on its way through an in-place exec of udsvisor
// (an upgrade): its spec and its fds, each named by the index that the
// caller's add returned. Adopt makes it a Listener again in the new
// program, which then owns the same socket, node and directories:
// nothing is bound, created or removed on the way.
type Saved struct {
	Path    string `json:"path,omitempty"`
	Addr    string `json:"addr,omitempty"`
	UID     int    `json:"uid"`
	GID     int    `json:"gid"`
	Mode    uint32 `json:"mode"`
	DirMode uint32 `json:"dir_mode"`
	Backlog int    `json:"backlog"`
	// Socket and Node are fd indexes; Node is -1 for TCP.
	Socket int    `json:"socket"`
	Node   int    `json:"node"`
	Dev    uint64 `json:"dev"`
	Ino    uint64 `json:"ino"`
	// Dirs are the fd indexes of the directory fds the Listener holds;
	// Dir and each created directory's Parent are positions in Dirs.
	Dirs    []int      `json:"dirs"`
	Dir     int        `json:"dir"`
	Created []SavedDir `json:"created,omitempty"`
}

// SavedDir is a directory that Bind created, for Close to remove.
type SavedDir struct {
	Parent int    `json:"parent"` // position in Saved.Dirs
	Name   string `json:"name"`
	Path   string `json:"path"`
	Dev    uint64 `json:"dev"`
	Ino    uint64 `json:"ino"`
}

// Save describes l for Adopt; add is called with each fd l holds and
// returns the index under which the fd will reach the new program. l
// stays open and usable.
func (l *Listener) Save(add func(fd int) int) (Saved, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return Saved{}, fmt.Errorf("socket %s: %w", l.spec, os.ErrClosed)
	}
	s := Saved{
		Path: l.spec.Path, UID: l.spec.UID, GID: l.spec.GID, Mode: uint32(l.spec.Mode),
		DirMode: uint32(l.spec.DirMode), Backlog: l.spec.Backlog,
		Socket: add(int(l.file.Fd())), Node: -1, Dev: l.dev, Ino: l.ino, Dir: -1,
	}
	if l.spec.Addr.IsValid() {
		s.Addr = l.spec.Addr.String()
	}
	if l.spec.Path == "" {
		return s, nil
	}
	s.Node = add(l.node)
	pos := make(map[int]int, len(l.fds))
	for i, fd := range l.fds {
		pos[fd] = i
		s.Dirs = append(s.Dirs, add(fd))
	}
	var ok bool
	if s.Dir, ok = pos[l.dir]; !ok {
		return Saved{}, fmt.Errorf("socket %s: internal error: directory fd not held", l.spec.Path)
	}
	for _, c := range l.created {
		p, ok := pos[c.parent]
		if !ok {
			return Saved{}, fmt.Errorf("socket %s: internal error: parent of %s not held", l.spec.Path, c.path)
		}
		s.Created = append(s.Created, SavedDir{Parent: p, Name: c.name, Path: c.path, Dev: c.dev, Ino: c.ino})
	}
	return s, nil
}

// Adopt returns the Listener that s describes, taking its fds from fd,
// which maps an index to the fd number in this program (or fails). It
// checks that every fd is what s says: a stream socket of the right
// family (and address, for TCP), the socket's node with the
// recorded device and inode, directories. On error it closes nothing:
// the fds stay for whoever takes them next.
func Adopt(s Saved, fd func(i int) (int, error)) (*Listener, error) {
	spec, err := s.spec()
	if err != nil {
		return nil, err
	}
	name := spec.String()
	fail := func(format string, args ...any) (*Listener, error) {
		return nil, fmt.Errorf("adopt socket %s: %s", name, fmt.Sprintf(format, args...))
	}
	sock, err := fd(s.Socket)
	if err != nil {
		return fail("%v", err)
	}
	if err := checkListening(sock, spec); err != nil {
		return fail("%v", err)
	}
	l := &Listener{spec: spec, dir: -1, node: -1}
	if spec.Path == "" {
		if s.Node != -1 || len(s.Dirs) > 0 || len(s.Created) > 0 {
			return fail("a TCP socket has no node or directories")
		}
		l.file = os.NewFile(uintptr(sock), name)
		return l, nil
	}
	if l.node, err = fd(s.Node); err != nil {
		return fail("node: %v", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(l.node, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK || st.Dev != s.Dev || st.Ino != s.Ino {
		return fail("node fd is not the socket file %d:%d", s.Dev, s.Ino)
	}
	l.dev, l.ino = s.Dev, s.Ino
	for _, i := range s.Dirs {
		d, err := fd(i)
		if err != nil {
			return fail("directory: %v", err)
		}
		if err := unix.Fstat(d, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fail("fd %d is not a directory", d)
		}
		l.fds = append(l.fds, d)
	}
	at := func(pos int) (int, bool) {
		if pos < 0 || pos >= len(l.fds) {
			return 0, false
		}
		return l.fds[pos], true
	}
	var ok bool
	if l.dir, ok = at(s.Dir); !ok {
		return fail("no directory fd")
	}
	for _, c := range s.Created {
		p, ok := at(c.Parent)
		if !ok || c.Name == "" || filepath.Base(c.Path) != c.Name || !filepath.IsAbs(c.Path) {
			return fail("bad created directory %q", c.Path)
		}
		l.created = append(l.created, createdDir{parent: p, name: c.Name, path: c.Path, dev: c.Dev, ino: c.Ino})
	}
	l.file = os.NewFile(uintptr(sock), spec.Path)
	return l, nil
}

// spec rebuilds and validates the Spec of s.
func (s Saved) spec() (Spec, error) {
	spec := Spec{Path: s.Path, UID: s.UID, GID: s.GID, Mode: fs.FileMode(s.Mode), DirMode: fs.FileMode(s.DirMode), Backlog: s.Backlog}
	switch {
	case s.Path != "" && s.Addr != "":
		return Spec{}, fmt.Errorf("adopt socket %s: both a path and an address", s.Path)
	case s.Addr != "":
		a, err := netip.ParseAddrPort(s.Addr)
		if err != nil {
			return Spec{}, fmt.Errorf("adopt socket %q: %w", s.Addr, err)
		}
		spec.Addr = a
		return spec, nil
	case s.Path == "":
		return Spec{}, errors.New("adopt socket: neither a path nor an address")
	}
	if err := validateUnix(spec); err != nil {
		return Spec{}, fmt.Errorf("adopt %w", err)
	}
	return spec, nil
}

// checkListening checks that fd is a stream socket of the family spec
// needs, bound to spec.Addr for TCP.
func checkListening(fd int, spec Spec) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return fmt.Errorf("fd %d is not a socket", fd)
	}
	// Not SO_ACCEPTCONN: a process may have shut the socket down, which
	// the supervisor mends once the process has ended.
	typ, err1 := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	dom, err2 := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("fd %d: %w", fd, err)
	}
	if typ != unix.SOCK_STREAM {
		return fmt.Errorf("fd %d is not a stream socket", fd)
	}
	if spec.Path != "" {
		if dom != unix.AF_UNIX {
			return fmt.Errorf("fd %d is not a Unix socket", fd)
		}
		return nil
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fmt.Errorf("fd %d: %w", fd, os.NewSyscallError("getsockname", err))
	}
	var got netip.AddrPort
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		got = netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		got = netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port))
	}
	want := netip.AddrPortFrom(spec.Addr.Addr().Unmap().WithZone(""), spec.Addr.Port())
	if got.Addr().Unmap() != want.Addr() || (want.Port() != 0 && got.Port() != want.Port()) {
		return fmt.Errorf("fd %d listens on %s, not %s", fd, got, spec.Addr)
	}
	return nil
}
