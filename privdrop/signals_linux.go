package privdrop

import (
	"bufio"
	"fmt"
	"math/bits"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxSignal is the highest Linux signal number (SIGRTMAX).
const maxSignal = 64

// resetSignalDispositions leaves no signal ignored, so that the command
// starts with every disposition at SIG_DFL (execve resets handled signals
// to SIG_DFL but keeps SIG_IGN).
//
// The Go runtime installs its own handler over an inherited SIG_IGN for
// most signals at start, but keeps SIG_IGN for SIGHUP and SIGINT, and
// never handles SIGTSTP, SIGTTIN and SIGTTOU by default. signal.Notify
// makes it install its handler for those. Only signals ignored already
// are notified: a SIGTERM that arrives meanwhile must still kill the
// helper, not vanish into a channel.
func resetSignalDispositions() error {
	var ignored []os.Signal
	for sig := 1; sig <= maxSignal; sig++ {
		if s := syscall.Signal(sig); signal.Ignored(s) {
			ignored = append(ignored, s)
		}
	}
	if len(ignored) > 0 {
		// Capacity 1: nobody reads; the channel only has to exist.
		signal.Notify(make(chan os.Signal, 1), ignored...)
	}

	// What Notify cannot reach (signal 32, which the runtime leaves
	// alone) is set to SIG_DFL directly. The runtime has no handler
	// for such a signal, so this takes nothing from it.
	left, err := ignoredSignals()
	if err != nil {
		return err
	}
	for left != 0 {
		sig := bits.TrailingZeros64(left) + 1
		left &^= 1 << (sig - 1)
		if err := setDefault(sig); err != nil {
			return err
		}
	}
	if left, err = ignoredSignals(); err != nil {
		return err
	} else if left != 0 {
		return fmt.Errorf("reset signals: still ignored: %#x", left)
	}
	return nil
}

// ignoredSignals reads the kernel's SigIgn mask (bit n-1 is signal n).
func ignoredSignals() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "SigIgn:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("parse /proc/self/status SigIgn: %w", err)
			}
			return m, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read /proc/self/status: %w", err)
	}
	return 0, fmt.Errorf("read /proc/self/status: no SigIgn line")
}

// setDefault sets sig's disposition to SIG_DFL with rt_sigaction, which
// x/sys does not wrap. An all-zero struct sigaction means SIG_DFL, no
// flags and an empty mask on every Linux architecture; the buffer is
// larger than any of them.
func setDefault(sig int) error {
	var act [8]uint64
	const sigsetSize = 8 // sizeof(sigset_t) in the kernel, 64 signals
	_, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig),
		uintptr(unsafe.Pointer(&act)), 0, sigsetSize, 0, 0)
	if errno != 0 {
		return fmt.Errorf("rt_sigaction %d: %w", sig, errno)
	}
	return nil
}
