// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/api"
)

// maxLine caps one logged line. A longer one is logged in pieces, so a
// child that writes without newlines cannot grow udsvisor's memory.
const maxLine = 16 << 10

// readChunk is how much of one pipe is read per round. A pipe with more
// waiting is read again in the next round, after the others: a flooding
// child cannot starve the rest.
const readChunk = 64 << 10

// outputs reads the stdout and stderr pipes of every child in one
// goroutine, over one epoll instance. A goroutine and a buffer per pipe
// would cost udsvisor tens of megabytes at 1,000 services, almost all of
// it for pipes that never carry a byte; here an idle pipe costs a few
// words and a buffer exists only for a line that is half written.
//
// A child that writes faster than the lines are logged fills its pipe
// and is slowed down; nothing is dropped.
type outputs struct {
	ep *polledEpoll // over every pipe's read end

	mu    sync.Mutex
	pipes map[int32]*output // by read-end fd; guarded by mu

	// holds carries an upgrade's request to stop reading (hold); done
	// is closed when run returns.
	holds chan holdReq
	done  chan struct{}
}

// holdReq stops the reading goroutine: it closes held once every
// half-read line is logged and waits for release.
type holdReq struct {
	held, release chan struct{}
}

// output is one pipe from a child's stdout or stderr into the log.
type output struct {
	o      *outputs
	log    svcLog
	ring   *logRing
	svc    string // the service's name
	stream string
	r, w   *os.File
	fd     int32
	pid    int
	index  int // the instance
	// partial is a line whose end has not been read yet; owned by the
	// reading goroutine.
	partial []byte
}

func newOutputs() (*outputs, error) {
	ep, err := newPolledEpoll("outputs")
	if err != nil {
		return nil, err
	}
	return &outputs{ep: ep, pipes: make(map[int32]*output), holds: make(chan holdReq, 1), done: make(chan struct{})}, nil
}

// pipe makes a pipe whose write end w is for a child's stream.
func (o *outputs) pipe(svc string, log svcLog, ring *logRing, stream string, index int) (*output, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pipe for %s: %w", stream, err)
	}
	return &output{o: o, log: log, ring: ring, svc: svc, stream: stream, r: r, w: w, index: index}, nil
}

// start closes udsvisor's copy of the write end (the child has its own)
// and logs each line the child writes until every writer has closed it:
// the child and any grandchild that inherited it.
func (out *output) start(pid int) {
	out.w.Close()
	out.pid = pid
	out.watch()
}

// watch adds the read end to the reading goroutine's set.
func (out *output) watch() {
	pid := out.pid
	rc, err := out.r.SyscallConn()
	if err == nil {
		err = rc.Control(func(fd uintptr) { out.fd = int32(fd) })
	}
	if err == nil {
		o := out.o
		o.mu.Lock()
		o.pipes[out.fd] = out
		o.mu.Unlock()
		// A pipe left with data after its chunk is reported again in
		// the next round.
		if err = o.ep.add(int(out.fd), out.fd, unix.EPOLLIN); err != nil {
			o.mu.Lock()
			delete(o.pipes, out.fd)
			o.mu.Unlock()
		}
	}
	if err != nil {
		out.log.Warn("cannot read child output; it is discarded", zap.Int("pid", pid),
			zap.String("stream", out.stream), zap.Error(err))
		out.r.Close()
	}
}

// abort closes both ends when no child was started.
func (out *output) abort() {
	out.r.Close()
	out.w.Close()
}

// run reads the pipes until stop is closed (and wake called); then it
// goes on until every pipe has reached its end or grace has passed, so
// that the last words of the stopped services are logged, and closes
// what is left.
func (o *outputs) run(stop <-chan struct{}, grace time.Duration) {
	defer close(o.done)
	defer o.closeAll()
	buf := make([]byte, readChunk)
	events := make([]unix.EpollEvent, 64)
	var graceEnd time.Time // set once stop is closed
	for {
		if graceEnd.IsZero() {
			select {
			case <-stop:
				graceEnd = time.Now().Add(grace)
			case h := <-o.holds:
				o.flush()
				close(h.held)
				<-h.release
				_ = o.ep.setDeadline(time.Time{})
			default:
			}
		}
		if !graceEnd.IsZero() {
			if o.empty() || !time.Now().Before(graceEnd) {
				return
			}
			if err := o.ep.setDeadline(graceEnd); err != nil {
				return
			}
		}
		n, err := o.ep.wait(events)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			continue // woken by wake, or the grace is over
		case err != nil:
			return
		}
		for _, ev := range events[:n] {
			o.mu.Lock()
			out := o.pipes[ev.Fd]
			o.mu.Unlock()
			if out != nil {
				o.readOnce(out, buf)
			}
		}
	}
}

// readOnce reads one chunk of out, logging its complete lines, or closes
// out at its end.
func (o *outputs) readOnce(out *output, buf []byte) {
	n, err := unix.Read(int(out.fd), buf)
	switch {
	case n > 0:
		out.feed(buf[:n])
	case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
	default: // EOF: every writer is gone (or an error that ends it too)
		if len(out.partial) > 0 {
			out.emit()
		}
		o.remove(out)
	}
}

// feed logs the complete lines of b and keeps an unfinished one.
func (out *output) feed(b []byte) {
	for len(b) > 0 {
		end := bytes.IndexByte(b, '\n')
		newline := end >= 0
		if !newline {
			end = len(b)
		}
		take := min(end, maxLine-len(out.partial))
		out.partial = append(out.partial, b[:take]...)
		b = b[take:]
		switch {
		case newline && take == end:
			out.emit()
			b = b[1:]
		case len(out.partial) == maxLine:
			out.emit() // a piece of an overlong line
		}
	}
}

// emit logs the line in partial and forgets it. partial is dropped
// rather than kept for reuse: most pipes are idle most of the time.
func (out *output) emit() {
	text := string(out.partial)
	out.partial = nil
	// Escaped for udsvisor's own log, whose console format writes the
	// message raw; the ring keeps the line as written (ctl logs escapes
	// it when it prints, the JSON API when it encodes).
	// Kept before it is logged, so that whoever reads the log line and
	// then asks for the service's lines finds it.
	out.ring.add(LogLine{Time: time.Now(), Pid: out.pid, Stream: out.stream, Instance: out.index, Line: text})
	out.log.Info(api.Printable(text), zap.Int("pid", out.pid), zap.String("stream", out.stream))
}

func (o *outputs) remove(out *output) {
	o.mu.Lock()
	delete(o.pipes, out.fd)
	o.mu.Unlock()
	// Closing the fd takes it out of the epoll set.
	out.r.Close()
}

// wake makes run look at its stop channel: a goroutine parked on a poll
// fd cannot wait on a channel too, but an expired deadline wakes it.
func (o *outputs) wake() {
	_ = o.ep.setDeadline(time.Now())
}

// hold stops the reading until release is called, once every line
// already read has been logged: what the children write meanwhile stays
// in the pipes, for release or for an upgrade's next program.
func (o *outputs) hold() (release func()) {
	h := holdReq{held: make(chan struct{}), release: make(chan struct{})}
	select {
	case o.holds <- h:
	case <-o.done:
		return func() {}
	}
	o.wake()
	select {
	case <-h.held:
	case <-o.done:
	}
	return func() { close(h.release) }
}

// flush logs the half-read lines as they are.
func (o *outputs) flush() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, out := range o.pipes {
		if len(out.partial) > 0 {
			out.emit()
		}
	}
}

func (o *outputs) empty() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.pipes) == 0
}

func (o *outputs) closeAll() {
	o.mu.Lock()
	pipes := o.pipes
	o.pipes = map[int32]*output{}
	o.mu.Unlock()
	for _, out := range pipes {
		if len(out.partial) > 0 {
			out.emit()
		}
		out.r.Close()
	}
	o.ep.Close()
}
