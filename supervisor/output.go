package supervisor

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/udsvisor/udsvisor/supervisor/api"
)

// maxLine caps one logged line. A longer one is logged in pieces, so a
// child that writes without newlines cannot grow udsvisor's memory.
const maxLine = 16 << 10

// output is one pipe from a child's stdout or stderr into the log.
type output struct {
	log    *zap.Logger
	ring   *logRing
	stream string
	r, w   *os.File
}

func newOutput(log *zap.Logger, ring *logRing, stream string) (*output, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pipe for %s: %w", stream, err)
	}
	return &output{log: log, ring: ring, stream: stream, r: r, w: w}, nil
}

// start closes udsvisor's copy of the write end (the child has its own)
// and logs each line the child writes until every writer has closed it:
// the child and any grandchild that inherited it.
func (o *output) start(pid int) {
	o.w.Close()
	log := o.log.With(zap.Int("pid", pid), zap.String("stream", o.stream))
	go func() {
		defer o.r.Close()
		br := bufio.NewReaderSize(o.r, maxLine)
		for {
			line, err := br.ReadSlice('\n')
			if len(line) > 0 {
				if line[len(line)-1] == '\n' {
					line = line[:len(line)-1]
				}
				text := string(line)
				log.Info(text)
				o.ring.add(api.LogLine{Time: time.Now(), Pid: pid, Stream: o.stream, Line: text})
			}
			switch {
			case err == nil, errors.Is(err, bufio.ErrBufferFull):
			case errors.Is(err, io.EOF), errors.Is(err, os.ErrClosed):
				return
			default:
				log.Warn("reading child output", zap.Error(err))
				return
			}
		}
	}()
}

// abort closes both ends when no child was started.
func (o *output) abort() {
	o.r.Close()
	o.w.Close()
}
