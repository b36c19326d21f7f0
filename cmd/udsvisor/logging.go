// SPDX-License-Identifier: Apache-2.0

//go:build linux

package main

import (
	"fmt"
	"os"

	"github.com/coreos/go-systemd/v22/journal"
	"go.uber.org/zap"
	"go.uber.org/zap/buffer"
	"go.uber.org/zap/zapcore"
)

// newLogger returns the structured logger for format "console" or "json"
// at level and above, writing to stderr (journald or the service manager
// picks it up there).
//
// When stderr is the journal (JOURNAL_STREAM names it), each line starts
// with its syslog priority ("<4>" for a warning), which journald strips
// and records, so that `journalctl -p warning -u udsvisor` finds it; and
// there is no timestamp, which journald adds itself.
func newLogger(format string, level zapcore.Level) *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "time"
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	enc.EncodeDuration = zapcore.StringDurationEncoder
	if toJournal, _ := journal.StderrIsJournalStream(); toJournal {
		enc.TimeKey = ""
		enc.LevelKey = ""
		return zap.New(zapcore.NewCore(priorityEncoder{newEncoder(format, enc)}, zapcore.Lock(os.Stderr), level))
	}
	return zap.New(zapcore.NewCore(newEncoder(format, enc), zapcore.Lock(os.Stderr), level))
}

func newEncoder(format string, enc zapcore.EncoderConfig) zapcore.Encoder {
	if format == "json" {
		return zapcore.NewJSONEncoder(enc)
	}
	enc.EncodeLevel = zapcore.CapitalLevelEncoder
	return zapcore.NewConsoleEncoder(enc)
}

// priorityEncoder prefixes each entry with its sd-daemon(3) priority.
type priorityEncoder struct{ zapcore.Encoder }

func (e priorityEncoder) Clone() zapcore.Encoder { return priorityEncoder{e.Encoder.Clone()} }

func (e priorityEncoder) EncodeEntry(ent zapcore.Entry, fields []zapcore.Field) (*buffer.Buffer, error) {
	b, err := e.Encoder.EncodeEntry(ent, fields)
	if err != nil {
		return nil, err
	}
	line := b.String()
	b.Reset()
	fmt.Fprintf(b, "<%d>%s", priority(ent.Level), line)
	return b, nil
}

// priority maps a zap level to a syslog priority.
func priority(l zapcore.Level) journal.Priority {
	switch {
	case l >= zapcore.ErrorLevel:
		return journal.PriErr
	case l == zapcore.WarnLevel:
		return journal.PriWarning
	case l == zapcore.InfoLevel:
		return journal.PriInfo
	default:
		return journal.PriDebug
	}
}
