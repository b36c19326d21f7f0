// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"sync"
	"time"
	"unsafe"

	"go.uber.org/zap"
)

// LogLine is one line a service's process wrote.
type LogLine struct {
	Time   time.Time `json:"time"`
	Pid    int       `json:"pid"`
	Stream string    `json:"stream"` // "stdout" or "stderr"
	// Instance is the index of the process among the service's
	// instances (UDSVISOR_INSTANCE).
	Instance int    `json:"instance"`
	Line     string `json:"line"` // as written, without the newline
}

// logLines and logBytes bound the output each service keeps for ctl
// logs: the newest lines, at most logLines of them and logBytes in all
// (as lineCost counts). The bytes bound is what keeps a thousand
// services' worth of long lines (up to maxLine each) from holding
// gigabytes; the journal, which gets every line, is the full record.
const (
	logLines = 1000
	logBytes = 256 << 10
)

// lineCost is what a kept line costs: its text and the LogLine around it.
func lineCost(l LogLine) int { return len(l.Line) + int(unsafe.Sizeof(l)) }

// followBuffer is how many lines a follower may fall behind before lines
// are dropped for it: a slow reader must never block a service's output.
const followBuffer = 256

// logRing keeps a service's recent output and feeds followers. It is
// shared by the output readers of successive processes and the control
// API, hence the mutex; it is not service state.
type logRing struct {
	mu    sync.Mutex
	buf   []LogLine // circular; grows up to logLines entries
	start int       // the oldest kept line
	n     int       // lines kept
	bytes int       // their lineCost
	subs  map[chan LogLine]struct{}
}

func newLogRing() *logRing {
	return &logRing{subs: make(map[chan LogLine]struct{})}
}

func (r *logRing) add(l LogLine) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.n == logLines:
		r.dropOldest()
	case r.n == len(r.buf):
		grown := make([]LogLine, min(logLines, max(16, 2*len(r.buf))))
		r.copyKept(grown)
		r.buf, r.start = grown, 0
	}
	r.buf[(r.start+r.n)%len(r.buf)] = l
	r.n++
	r.bytes += lineCost(l)
	for r.bytes > logBytes {
		r.dropOldest()
	}
	for ch := range r.subs {
		select {
		case ch <- l:
		default: // the follower is too slow; it misses this line
		}
	}
}

// dropOldest forgets the oldest kept line.
func (r *logRing) dropOldest() {
	r.bytes -= lineCost(r.buf[r.start])
	r.buf[r.start] = LogLine{} // lets the text go
	r.start = (r.start + 1) % len(r.buf)
	r.n--
}

// copyKept copies the newest len(dst) kept lines (all, if dst is
// longer) into dst, oldest first, and returns how many it copied.
func (r *logRing) copyKept(dst []LogLine) int {
	k := min(len(dst), r.n)
	first := (r.start + r.n - k) % max(len(r.buf), 1)
	c := copy(dst[:k], r.buf[first:])
	copy(dst[c:k], r.buf)
	return k
}

// last returns the newest n lines, oldest first (all when n <= 0).
func (r *logRing) last(n int) []LogLine {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n <= 0 || n > r.n {
		n = r.n
	}
	if n == 0 {
		return nil
	}
	out := make([]LogLine, n)
	r.copyKept(out)
	return out
}

// subscribe returns a channel of new lines and the function that ends
// the subscription and closes the channel.
func (r *logRing) subscribe() (<-chan LogLine, func()) {
	ch := make(chan LogLine, followBuffer)
	r.mu.Lock()
	r.subs[ch] = struct{}{}
	r.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			r.mu.Lock()
			delete(r.subs, ch)
			r.mu.Unlock()
			close(ch)
		})
	}
}

// svcLog logs for one service (and one of its instances). It adds the
// service field at each call rather than with zap's With, whose copy of
// the encoder costs about a kilobyte that each of 1,000 mostly silent
// services would keep.
type svcLog struct {
	*zap.Logger
	fields []zap.Field // service, then instance for a service of several
}

func newSvcLog(log *zap.Logger, name string) svcLog {
	return svcLog{log, []zap.Field{zap.String("service", name)}}
}

// instance adds the instance index to every line.
func (l svcLog) instance(i int) svcLog {
	return svcLog{l.Logger, []zap.Field{l.fields[0], zap.Int("instance", i)}}
}

// Info logs msg with the service field first.
func (l svcLog) Info(msg string, fields ...zap.Field) {
	l.Logger.Info(msg, append(l.fields[:len(l.fields):len(l.fields)], fields...)...)
}

// Warn logs msg with the service field first.
func (l svcLog) Warn(msg string, fields ...zap.Field) {
	l.Logger.Warn(msg, append(l.fields[:len(l.fields):len(l.fields)], fields...)...)
}

// Error logs msg with the service field first.
func (l svcLog) Error(msg string, fields ...zap.Field) {
	l.Logger.Error(msg, append(l.fields[:len(l.fields):len(l.fields)], fields...)...)
}
