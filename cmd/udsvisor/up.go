package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/supervisor"
	"github.com/udsvisor/udsvisor/supervisor/config"
)

func runUp(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	cfgPath := configFlag(fs)
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	// Once, before any thread can create a file: every socket is born
	// 0600 or stricter and widened with chmod afterwards. The umask is
	// shared by all threads, so it is never toggled around a bind.
	unix.Umask(0o077)
	// fds inherited from whoever started udsvisor would leak into every
	// child through os/exec (golang/go#37857).
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fmt.Errorf("close_range: %w", err)
	}

	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Supervisor.LogFormat)
	defer log.Sync()
	for _, w := range cfg.Warnings {
		log.Warn(w.Error())
	}

	// Grandchildren that escape their service's process group are
	// reparented to udsvisor rather than to PID 1, so that they are
	// reaped here.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		log.Warn("cannot become a subreaper; escaped grandchildren go to PID 1", zap.Error(err))
	}

	// Notify, never Ignore: an ignored signal stays ignored in children.
	// The channel holds one signal per kind that matters.
	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for sig := range sigc {
			switch sig {
			case unix.SIGHUP:
				log.Warn("SIGHUP received; reloading the config is not supported by this version, nothing changed")
			default:
				log.Info("signal received; stopping", zap.String("signal", sig.String()))
				cancel()
			}
		}
	}()

	sup := supervisor.New(cfg, log, supervisor.Options{ReapOrphans: true})
	if err := sup.Run(ctx, nil); err != nil {
		return err
	}
	log.Info("udsvisor stopped")
	return nil
}
