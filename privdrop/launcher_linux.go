// SPDX-License-Identifier: Apache-2.0

package privdrop

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/osthread"
)

// Launcher starts launch helpers from OS threads of its own, whose file
// descriptor tables hold almost nothing.
//
// A fork copies the forking thread's fd table, and the exec then closes
// every close-on-exec entry of the copy. With 1,000 services udsvisor
// holds some 5,000 fds (the sockets, their directory and node handles,
// the output pipes), so each launch from an ordinary thread copied and
// closed 5,000 fds: a cost that grows with every service, paid by every
// start. Each launcher thread unshares its fd table (unshare(2)
// CLONE_FILES) when it is created, while the table is small, and
// receives the fds of each launch over a socket pair (SCM_RIGHTS); the
// child then inherits a dozen fds whatever the number of services.
// A fork returns only once the child has exec'd, so a few threads keep
// the CPUs busy while a thousand services start.
//
// The threads are also where the kernel ties each child's parent-death
// signal (golang/go#27505): they live until Close, which must come after
// every child has been stopped.
type Launcher struct {
	// idle holds the threads not serving a Start; a Start takes one,
	// so that its message on the thread's socket pair and its request
	// belong together.
	idle    chan *launchThread
	threads []*launchThread
	quit    chan struct{}
	once    sync.Once
	// main is the thread of a main-thread launcher (NewMainLauncher),
	// nil otherwise; mainPeer is its end of the socket pair until
	// ServeMain takes it.
	main     *launchThread
	mainPeer int
}

// launchThread is one launcher thread and the means to talk to it.
type launchThread struct {
	sock  int // our end of its socket pair, in the process's fd table
	reqs  chan launchReq
	execs chan execReq  // main-thread launcher only
	done  chan struct{} // closed when the thread's goroutine has ended
	tid   int           // the thread's id, set before done is closed
}

type launchReq struct {
	l     *Launch
	nfds  int
	reply chan launchResult // capacity 1: the launcher never waits for the caller
}

type launchResult struct {
	pid int
	err error
}

// NewLauncher starts n launcher threads (at least one). Create it early,
// before the process opens many fds: each thread's table is a copy of
// the process's at this moment, and the files in it stay open until
// Close returns.
func NewLauncher(n int) (*Launcher, error) {
	ln := &Launcher{idle: make(chan *launchThread, max(n, 1)), quit: make(chan struct{})}
	for range max(n, 1) {
		t, err := ln.startThread()
		if err != nil {
			ln.Close()
			return nil, err
		}
		ln.threads = append(ln.threads, t)
		ln.idle <- t
	}
	return ln, nil
}

func (ln *Launcher) startThread() (*launchThread, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socketpair", err)
	}
	t := newLaunchThread(fds[0])
	ready := make(chan error, 1) // the thread reports once, without waiting
	// A thread of its own, never the main one, whose table becomes
	// private and which ends with its goroutine.
	osthread.Go(func() { t.serve(fds[1], ln.quit, ready, nil, nil) })
	err = <-ready
	// The thread's table has its own copy of fds[1]; the process's copy
	// is not needed (nor, after a failure, the thread's).
	unix.Close(fds[1])
	if err != nil {
		unix.Close(fds[0])
		return nil, err
	}
	return t, nil
}

func newLaunchThread(sock int) *launchThread {
	return &launchThread{sock: sock, reqs: make(chan launchReq), execs: make(chan execReq), done: make(chan struct{})}
}

// Close ends the launcher's threads, which kills every child they forked
// that is still alive (parent-death signal): call it once they are gone.
func (ln *Launcher) Close() {
	ln.once.Do(func() {
		close(ln.quit)
		for _, t := range ln.threads {
			<-t.done
			unix.Close(t.sock)
		}
		// One bound for all: a thread that has not ended by then is
		// stuck in the kernel, and Close must not hang on it.
		deadline := time.Now().Add(time.Second)
		for _, t := range ln.threads {
			waitThreadGone(t.tid, deadline)
		}
	})
}

// waitThreadGone waits until the thread tid has exited, or until
// deadline. Its goroutine ends with the thread locked, so the runtime
// ends the thread, but later: until then its fd table, a copy of the
// process's, holds files the caller may believe closed (a listener
// would still accept). The id is released only after the thread's
// files are, so tgkill failing with ESRCH means they are closed.
func waitThreadGone(tid int, deadline time.Time) {
	if tid == 0 || tid == unix.Getpid() {
		return // never started, or the main thread, which stays
	}
	for unix.Tgkill(unix.Getpid(), tid, 0) != unix.ESRCH && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}

// Start forks and execs l's command (the launch helper) from the
// launcher's thread, with l.cmd's arguments, environment, stdin (see
// SetStdin; /dev/null by default), stdout, stderr, extra files and
// SysProcAttr, as l.cmd.Start would. l.cmd itself is not started; the caller then calls
// l.AfterStart, or l.Abort when Start fails.
func (ln *Launcher) Start(l *Launch) (int, error) {
	var t *launchThread
	select {
	case <-ln.quit:
		return 0, fmt.Errorf("launch %s: the launcher is closed", l.cmd.Path)
	case t = <-ln.idle:
	}
	defer func() { ln.idle <- t }()
	fds := []int{-1, -1, -1} // stdin, stdout, stderr: -1 is /dev/null
	for i, r := range stdio(l.cmd) {
		if f, ok := r.(*os.File); ok && f != nil {
			fds[i] = int(f.Fd())
		} else if r != nil {
			return 0, fmt.Errorf("launch %s: stdin, stdout and stderr must be files", l.cmd.Path)
		}
	}
	for _, f := range l.cmd.ExtraFiles {
		fds = append(fds, int(f.Fd()))
	}
	var send []int
	for _, fd := range fds {
		if fd >= 0 {
			send = append(send, fd)
		}
	}

	// Sent from this goroutine's thread, which shares the process's fd
	// table, where these numbers mean l's files.
	err := unix.Sendmsg(t.sock, []byte{0}, unix.UnixRights(send...), nil, 0)
	runtime.KeepAlive(l)
	if err != nil {
		return 0, fmt.Errorf("launch %s: pass fds to the launcher: %w", l.cmd.Path, os.NewSyscallError("sendmsg", err))
	}
	reply := make(chan launchResult, 1)
	select {
	case t.reqs <- launchReq{l: l, nfds: len(send), reply: reply}:
	case <-t.done:
		return 0, fmt.Errorf("launch %s: the launcher is closed", l.cmd.Path)
	}
	r := <-reply
	return r.pid, r.err
}

func (t *launchThread) serve(peer int, quit <-chan struct{}, ready chan<- error, inherited []int, started func()) {
	defer close(t.done)
	t.tid = unix.Gettid()
	// The runtime's own fds (its epoll and event fds) are in the copy
	// and must stay: the runtime may use them from any thread.
	if err := unix.Unshare(unix.CLONE_FILES); err != nil {
		ready <- os.NewSyscallError("unshare CLONE_FILES", err)
		return
	}
	// The copy holds what the process inherited through an exec; the
	// process's table keeps them, and only there may they be closed.
	for _, fd := range inherited {
		unix.Close(fd)
	}
	devnull, err := unix.Open(os.DevNull, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		ready <- &os.PathError{Op: "open", Path: os.DevNull, Err: err}
		return
	}
	ready <- nil
	if started != nil {
		started()
	}
	for {
		select {
		case <-quit:
			return
		case r := <-t.reqs:
			pid, err := forkFrom(peer, devnull, r)
			r.reply <- launchResult{pid, err}
		case r := <-t.execs:
			// Returns only if the exec failed.
			r.reply <- execFrom(peer, r)
		}
	}
}

// forkFrom receives r's fds into the launcher's table and forks and
// execs the helper with them; it runs on the launcher's thread.
func forkFrom(peer, devnull int, r launchReq) (int, error) {
	c := r.l.cmd
	oob := make([]byte, unix.CmsgSpace(4*r.nfds))
	_, oobn, _, _, err := unix.Recvmsg(peer, make([]byte, 1), oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return 0, fmt.Errorf("launch %s: receive fds: %w", c.Path, os.NewSyscallError("recvmsg", err))
	}
	var got []int
	if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil && len(msgs) == 1 {
		got, _ = unix.ParseUnixRights(&msgs[0])
	}
	defer func() {
		for _, fd := range got {
			unix.Close(fd)
		}
	}()
	if len(got) != r.nfds {
		return 0, fmt.Errorf("launch %s: received %d fds, want %d", c.Path, len(got), r.nfds)
	}
	var files []uintptr
	next := 0
	for _, r := range stdio(c) {
		if f, ok := r.(*os.File); ok && f != nil {
			files = append(files, uintptr(got[next]))
			next++
		} else {
			files = append(files, uintptr(devnull))
		}
	}
	for _, fd := range got[next:] {
		files = append(files, uintptr(fd))
	}
	pid, err := syscall.ForkExec(c.Path, c.Args, &syscall.ProcAttr{Env: c.Env, Files: files, Sys: c.SysProcAttr})
	if err != nil {
		return 0, &os.PathError{Op: "fork/exec", Path: c.Path, Err: err}
	}
	return pid, nil
}

// stdio returns c's stdin, stdout and stderr, for the launcher, which
// takes files only: an interface holding a nil *os.File is nil here.
func stdio(c *exec.Cmd) [3]any {
	var out [3]any
	for i, v := range []any{c.Stdin, c.Stdout, c.Stderr} {
		if f, ok := v.(*os.File); ok && f == nil {
			continue
		}
		out[i] = v
	}
	return out
}
