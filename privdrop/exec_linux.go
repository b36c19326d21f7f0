// SPDX-License-Identifier: Apache-2.0

package privdrop

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// A process that re-executes itself in place (udsvisor's upgrade) keeps
// its children only if the thread that execs is the one that forked them:
// the kernel ties each child's parent-death signal to its parent thread
// and delivers it when that thread goes, and exec ends every thread but
// the caller (golang/go#27505, SECURITY-NOTES 0.3). A main-thread
// launcher therefore forks every child from the main thread, the one
// thread that survives its own exec, and execs from there.
//
// Its table is private too (unshare CLONE_FILES), so the fds that must
// pass through the exec reach it over its socket pair, like a launch's.
// There they are placed at consecutive numbers without close-on-exec
// only once the exec is due: no fork from any other thread can catch
// them, since no other thread shares that table.

// ExecFDsEnv names the variable that Exec adds to the environment:
// "BASE:N", the fds it passed being BASE..BASE+N-1 in the order given.
const ExecFDsEnv = "UDSVISOR_EXEC_FDS"

// maxExecFDs bounds the fds one Exec passes.
const maxExecFDs = 1 << 20

// scmMaxFDs is the most fds one SCM_RIGHTS message may carry (the
// kernel's SCM_MAX_FD).
const scmMaxFDs = 253

// The bytes of Exec's messages to the main thread: a batch of fds, and
// the end of them.
const (
	execBatch = 1
	execEnd   = 2
)

type execReq struct {
	path      string // for errors
	exe       int    // index in the fds of the program to run
	argv, env []string
	nfds      int
	reply     chan error // capacity 1
}

// NewMainLauncher returns a launcher whose one thread is the process's
// main thread: nothing runs until ServeMain is called there. Unlike
// NewLauncher's, its children survive Exec.
func NewMainLauncher() (*Launcher, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socketpair", err)
	}
	t := newLaunchThread(fds[0])
	ln := &Launcher{idle: make(chan *launchThread, 1), quit: make(chan struct{}), threads: []*launchThread{t},
		main: t, mainPeer: fds[1]}
	ln.idle <- t
	return ln, nil
}

// ServeMain serves ln's launches on the calling thread until Close. The
// caller must be the main goroutine, locked to the main thread from an
// init function (runtime.LockOSThread), and must run nothing else
// there: the thread's fd table becomes its own. inherited are fds of
// the process that an exec passed (they stay open in the process, not
// in the thread's copy). started is called on the main thread once its
// table is its own, before the first launch: what the process opens
// from then on stays out of the thread's table. Start and Exec may be
// called before ServeMain; they wait for it.
func (ln *Launcher) ServeMain(inherited []int, started func()) error {
	if ln.main == nil {
		return errors.New("launcher: ServeMain on a launcher of its own threads")
	}
	if unix.Gettid() != unix.Getpid() {
		return errors.New("launcher: ServeMain must run on the main thread (runtime.LockOSThread in init)")
	}
	ready := make(chan error, 1)  // serve reports once
	result := make(chan error, 1) // the goroutine below reports once
	peer := ln.mainPeer
	go func() {
		// The process's copy of the thread's end, closed from a thread
		// that shares the process's table once the thread has its own.
		err := <-ready
		unix.Close(peer)
		result <- err
	}()
	ln.main.serve(peer, ln.quit, ready, inherited, started)
	return <-result
}

// Exec replaces the process with the program open as fds[exe] (argv,
// env), from the main thread, keeping every child. fds are files of the
// process that the new program receives at BASE.. (see ExecFDsEnv);
// they and nothing else of udsvisor's are inherited. Exec returns only
// on failure, with the process unchanged; it fails at once on a launcher
// that is not the main thread's.
func (ln *Launcher) Exec(exe int, argv, env []string, fds []int) error {
	path := "the new program"
	if len(argv) > 0 {
		path = argv[0]
	}
	if exe < 0 || exe >= len(fds) {
		return fmt.Errorf("exec %s: no fd %d among %d", path, exe, len(fds))
	}
	if ln.main == nil {
		return errors.New("exec: the launcher does not run on the main thread")
	}
	if len(fds) > maxExecFDs {
		return fmt.Errorf("exec %s: %d fds to pass, more than %d", path, len(fds), maxExecFDs)
	}
	var t *launchThread
	select {
	case <-ln.quit:
		return fmt.Errorf("exec %s: the launcher is closed", path)
	case t = <-ln.idle:
	}
	defer func() { ln.idle <- t }()
	reply := make(chan error, 1)
	select {
	case t.execs <- execReq{path: path, exe: exe, argv: argv, env: env, nfds: len(fds), reply: reply}:
	case <-t.done:
		return fmt.Errorf("exec %s: the launcher is closed", path)
	}
	// The thread receives batch after batch until the end marker, which
	// goes even after a failed send: the stream stays in step, and no
	// later launch reads fds meant for the exec.
	var sendErr error
	for len(fds) > 0 && sendErr == nil {
		n := min(len(fds), scmMaxFDs)
		if err := unix.Sendmsg(t.sock, []byte{execBatch}, unix.UnixRights(fds[:n]...), nil, 0); err != nil {
			sendErr = fmt.Errorf("exec %s: pass fds to the main thread: %w", path, os.NewSyscallError("sendmsg", err))
		}
		fds = fds[n:]
	}
	if err := unix.Sendmsg(t.sock, []byte{execEnd}, nil, nil, 0); err != nil && sendErr == nil {
		sendErr = fmt.Errorf("exec %s: %w", path, os.NewSyscallError("sendmsg", err))
	}
	err := <-reply
	if sendErr != nil {
		return sendErr
	}
	return err
}

// execFrom receives r's fds into the main thread's table, places them at
// BASE.. without close-on-exec and execs. It runs on the main thread and
// returns only on failure, having closed what it received.
func execFrom(peer int, r execReq) error {
	got := make([]int, 0, r.nfds)
	defer func() {
		for _, fd := range got {
			unix.Close(fd)
		}
	}()
	// Every message up to the end marker is read, whatever goes wrong,
	// so that the socket pair stays in step for the launches.
	var recvErr error
	oob := make([]byte, unix.CmsgSpace(4*scmMaxFDs))
	for {
		b := make([]byte, 1)
		n, oobn, flags, _, err := unix.Recvmsg(peer, b, oob, unix.MSG_CMSG_CLOEXEC)
		if err != nil {
			return fmt.Errorf("exec %s: receive fds: %w", r.path, os.NewSyscallError("recvmsg", err))
		}
		if n == 0 || b[0] == execEnd {
			break
		}
		fds, err := parseRights(oob[:oobn])
		got = append(got, fds...)
		if err == nil && flags&unix.MSG_CTRUNC != 0 {
			err = errors.New("fds lost (MSG_CTRUNC; out of fds?)")
		}
		if err != nil && recvErr == nil {
			recvErr = fmt.Errorf("exec %s: receive fds: %w", r.path, err)
		}
	}
	if recvErr != nil {
		return recvErr
	}
	if len(got) != r.nfds {
		return fmt.Errorf("exec %s: received %d fds, want %d", r.path, len(got), r.nfds)
	}
	base, err := aboveAll()
	if err != nil {
		return fmt.Errorf("exec %s: %w", r.path, err)
	}
	// From here until the exec no other fork may run in this process
	// (T24); none can see this table anyway, but os/exec users elsewhere
	// respect the lock.
	syscall.ForkLock.Lock()
	defer syscall.ForkLock.Unlock()
	placed := make([]int, 0, len(got))
	defer func() {
		for _, fd := range placed {
			unix.Close(fd)
		}
	}()
	for i, fd := range got {
		// F_DUPFD returns the lowest free number from BASE+i, which
		// is BASE+i: everything from BASE on is free. The copy is not
		// close-on-exec.
		nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD, base+i)
		if err != nil {
			return fmt.Errorf("exec %s: place fd %d: %w", r.path, base+i, os.NewSyscallError("fcntl F_DUPFD", err))
		}
		placed = append(placed, nfd)
		if nfd != base+i {
			return fmt.Errorf("exec %s: fd %d landed at %d", r.path, base+i, nfd)
		}
	}
	env := append(r.env[:len(r.env):len(r.env)], ExecFDsEnv+"="+strconv.Itoa(base)+":"+strconv.Itoa(len(got)))
	// syscall.Exec puts back the soft limit of open files the runtime
	// raised at start, and leaves it so when the exec fails: restored
	// here, raw, so that the runtime still restores it in children.
	var nofile unix.Rlimit
	limErr := unix.Prlimit(0, unix.RLIMIT_NOFILE, nil, &nofile)
	// Through /proc/self/fd, which is the main thread's table: the
	// program that was checked, whatever its path names now.
	err = syscall.Exec("/proc/self/fd/"+strconv.Itoa(base+r.exe), r.argv, env)
	if limErr == nil {
		unix.Prlimit(0, unix.RLIMIT_NOFILE, &nofile, nil)
	}
	return &os.PathError{Op: "exec", Path: r.path, Err: err}
}

// parseRights returns the fds of an SCM_RIGHTS control message.
func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		got, err := unix.ParseUnixRights(&m)
		if err != nil {
			return fds, err
		}
		fds = append(fds, got...)
	}
	if len(fds) == 0 {
		return nil, errors.New("a batch without fds")
	}
	return fds, nil
}

// aboveAll returns the lowest fd number above every fd open in the
// calling thread's table.
func aboveAll() (int, error) {
	ents, err := os.ReadDir("/proc/thread-self/fd")
	if err != nil {
		return 0, err
	}
	top := 2
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil && n > top {
			top = n
		}
	}
	return top + 1, nil
}

// ExecFDs returns the fds that Exec passed to this process (from
// ExecFDsEnv, which it then unsets), or nil if none were. The fds are
// marked close-on-exec.
func ExecFDs() ([]int, error) {
	v, ok := os.LookupEnv(ExecFDsEnv)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(ExecFDsEnv)
	b, n, found := strings.Cut(v, ":")
	base, err1 := strconv.Atoi(b)
	count, err2 := strconv.Atoi(n)
	if !found || err1 != nil || err2 != nil || base < 3 || count < 0 || count > maxExecFDs || base > 1<<30 {
		return nil, fmt.Errorf("%s=%q: want BASE:N", ExecFDsEnv, v)
	}
	fds := make([]int, count)
	for i := range fds {
		fds[i] = base + i
		if _, err := unix.FcntlInt(uintptr(fds[i]), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
			return nil, fmt.Errorf("%s: fd %d: %w", ExecFDsEnv, fds[i], os.NewSyscallError("fcntl", err))
		}
	}
	return fds, nil
}
