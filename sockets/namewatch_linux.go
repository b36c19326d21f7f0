// SPDX-License-Identifier: Apache-2.0

package sockets

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// NameWatch puts back, at once, the public name of a Unix socket that
// someone unlinked while it listens (an app that removes its socket path,
// an operator's rm), instead of after the process ends: one inotify
// instance watches the sockets' directories for the removal of their
// names, and Restore links each name again to the same listener.
type NameWatch struct {
	// f is the inotify instance, read by run through the poller; fd is
	// its number (f.Fd would make it blocking, and Close could then not
	// end a read).
	f  *os.File
	fd int
	// restored is told of each name put back, or of a failure to.
	restored func(label string, l *Listener, err error)

	mu     sync.Mutex
	names  map[int32]map[string]watched // by watch descriptor, then name
	wd     map[*Listener]int32
	closed bool // fd may be another file's once closed
	done   chan struct{}
}

type watched struct {
	l     *Listener
	label string
}

// NewNameWatch starts a NameWatch; restored is called, from the watch's
// goroutine, after each name it put back or failed to.
func NewNameWatch(restored func(label string, l *Listener, err error)) (*NameWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("inotify_init1", err)
	}
	w := &NameWatch{f: os.NewFile(uintptr(fd), "inotify"), fd: fd, restored: restored,
		names: make(map[int32]map[string]watched), wd: make(map[*Listener]int32), done: make(chan struct{})}
	go w.run()
	return w, nil
}

// Add watches l's name (a TCP socket has none); label names it in the
// report.
func (w *NameWatch) Add(l *Listener, label string) error {
	l.mu.Lock()
	if l.closed || l.spec.Path == "" {
		l.mu.Unlock()
		return nil
	}
	// The directory Bind verified, through its fd: never a path that
	// could lead elsewhere now.
	dir := procPath(l.dir, "")
	name := filepath.Base(l.spec.Path)
	l.mu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errors.New("the name watch is closed")
	}
	wd, err := unix.InotifyAddWatch(w.fd, dir, unix.IN_DELETE|unix.IN_MOVED_FROM|unix.IN_ONLYDIR|unix.IN_MASK_ADD)
	if err != nil {
		return &os.PathError{Op: "inotify_add_watch", Path: filepath.Dir(l.spec.Path), Err: err}
	}
	if w.names[int32(wd)] == nil {
		w.names[int32(wd)] = make(map[string]watched)
	}
	w.names[int32(wd)][name] = watched{l: l, label: label}
	w.wd[l] = int32(wd)
	return nil
}

// Remove stops watching l's name, before udsvisor itself removes it.
func (w *NameWatch) Remove(l *Listener) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wd, ok := w.wd[l]
	if !ok {
		return
	}
	delete(w.wd, l)
	for name, x := range w.names[wd] {
		if x.l == l {
			delete(w.names[wd], name)
		}
	}
	if len(w.names[wd]) == 0 {
		delete(w.names, wd)
		if !w.closed {
			unix.InotifyRmWatch(w.fd, uint32(wd))
		}
	}
}

// Close ends the watch.
func (w *NameWatch) Close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.f.Close()
	<-w.done
}

func (w *NameWatch) run() {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if errors.Is(err, os.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := string(bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)], "\x00"))
			off += unix.SizeofInotifyEvent + int(ev.Len)
			w.handle(ev.Wd, ev.Mask, name)
		}
	}
}

// handle restores the name an event says is gone; after an overflow,
// every name.
func (w *NameWatch) handle(wd int32, mask uint32, name string) {
	var gone []watched
	w.mu.Lock()
	switch {
	case mask&unix.IN_Q_OVERFLOW != 0:
		for _, m := range w.names {
			for _, x := range m {
				gone = append(gone, x)
			}
		}
	case mask&unix.IN_IGNORED != 0:
		// The directory itself went away: nothing to link into.
		for _, x := range w.names[wd] {
			delete(w.wd, x.l)
		}
		delete(w.names, wd)
	default:
		if x, ok := w.names[wd][name]; ok {
			gone = append(gone, x)
		}
	}
	w.mu.Unlock()
	for _, x := range gone {
		restored, err := x.l.Restore()
		if restored || err != nil {
			w.restored(x.label, x.l, err)
		}
	}
}
