// SPDX-License-Identifier: Apache-2.0

//go:build linux

package osthread

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// f never runs on the main thread, and its thread ends with it, even
// when the goroutine Go starts lands on the main thread first.
func TestGoAvoidsTheMainThreadAndEndsItsThread(t *testing.T) {
	// Leave the main thread free, so that some of the goroutines below
	// are scheduled on it.
	runtime.UnlockOSThread()
	pid := unix.Getpid()
	for range 200 {
		tids := make(chan int)
		Go(func() { tids <- unix.Gettid() })
		tid := <-tids
		if tid == pid {
			t.Fatal("f ran on the main thread")
		}
		// The thread ends soon after f returns (ESRCH).
		deadline := time.Now().Add(10 * time.Second)
		for unix.Tgkill(pid, tid, 0) == nil {
			if time.Now().After(deadline) {
				t.Fatalf("thread %d still runs 10 s after f returned", tid)
			}
			runtime.Gosched()
		}
	}
}
