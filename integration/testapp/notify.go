// SPDX-License-Identifier: Apache-2.0

package main

import (
	"flag"
	"log"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// The sd_notify side of the test app, for ready = "notify" services.
// Messages take "\n" (backslash n) for a line break, so that a command
// in services.toml can send several fields at once, and "{grandchild}"
// for the pid of the -grandchild process.
var (
	notifyAtStart = flag.String("notify", "", "send this to $NOTIFY_SOCKET once serving")
	notifyOnUSR1  = flag.String("notify-usr1", "", "send this to $NOTIFY_SOCKET on each SIGUSR1")
	notifyOnUSR2  = flag.String("notify-usr2", "", "send this to $NOTIFY_SOCKET on each SIGUSR2")
	notifyOnly    = flag.String("notify-send", "", "send this to $NOTIFY_SOCKET and exit (as if another program did)")
	keepalive     = flag.Bool("watchdog-keepalive", false, "send WATCHDOG=1 at half of $WATCHDOG_USEC")
)

// grandchildPid is the -grandchild process, once started.
var grandchildPid int

func sdNotify(msg string) {
	msg = strings.ReplaceAll(msg, `\n`, "\n")
	msg = strings.ReplaceAll(msg, "{grandchild}", strconv.Itoa(grandchildPid))
	if _, err := daemon.SdNotify(false, msg); err != nil {
		log.Printf("sd_notify: %v", err)
	}
}

// notifyOnce handles -notify-send, before anything else.
func notifyOnce() {
	if *notifyOnly != "" {
		sdNotify(*notifyOnly)
		os.Exit(0)
	}
}

// startNotify sends -notify and arms -notify-usr1 and the keepalive.
func startNotify() {
	for sig, msg := range map[syscall.Signal]string{syscall.SIGUSR1: *notifyOnUSR1, syscall.SIGUSR2: *notifyOnUSR2} {
		if msg == "" {
			continue
		}
		c := make(chan os.Signal, 1)
		signal.Notify(c, sig)
		go func() {
			for range c {
				sdNotify(msg)
			}
		}()
	}
	if *keepalive {
		if every, err := daemon.SdWatchdogEnabled(false); err == nil && every > 0 {
			go func() {
				for range time.Tick(every / 2) {
					sdNotify("WATCHDOG=1")
				}
			}()
		}
	}
	if *notifyAtStart != "" {
		sdNotify(*notifyAtStart)
	}
}
