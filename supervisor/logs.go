// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"sync"
	"time"

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

// logLines is how many lines of output each service keeps for ctl logs.
const logLines = 1000

// followBuffer is how many lines a follower may fall behind before lines
// are dropped for it: a slow reader must never block a service's output.
const followBuffer = 256

// logRing keeps a service's recent output and feeds followers. It is
// shared by the output readers of successive processes and the control
// API, hence the mutex; it is not service state.
type logRing struct {
	mu    sync.Mutex
	lines []LogLine // ring of at most logLines
	next  int       // where the next line goes once full
	subs  map[chan LogLine]struct{}
}

func newLogRing() *logRing {
	return &logRing{subs: make(map[chan LogLine]struct{})}
}

func (r *logRing) add(l LogLine) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lines) < logLines {
		r.lines = append(r.lines, l)
	} else {
		r.lines[r.next] = l
		r.next = (r.next + 1) % logLines
	}
	for ch := range r.subs {
		select {
		case ch <- l:
		default: // the follower is too slow; it misses this line
		}
	}
}

// last returns the newest n lines, oldest first (all when n <= 0).
func (r *logRing) last(n int) []LogLine {
	r.mu.Lock()
	defer r.mu.Unlock()
	ordered := append(append([]LogLine(nil), r.lines[r.next:]...), r.lines[:r.next]...)
	if n > 0 && n < len(ordered) {
		ordered = ordered[len(ordered)-n:]
	}
	return ordered
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
