// SPDX-License-Identifier: Apache-2.0

//go:build linux

// Package osthread runs code on an OS thread of its own, one that nothing
// else ever runs on and that ends with the code.
//
// Some per-thread kernel state cannot be undone: a private fd table
// (unshare CLONE_FILES), a private mount namespace or root (CLONE_NEWNS,
// CLONE_FS), the thread a child's parent-death signal is tied to. A
// goroutine that sets it must keep its thread locked and end with it, so
// that the runtime never hands the thread to other goroutines.
package osthread

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// Go runs f in a new goroutine locked to an OS thread that is not the
// process's main thread, and ends that thread when f returns. The main
// thread is never used: its per-thread state is the one /proc/self shows,
// and the runtime does not end it when a locked goroutine returns.
func Go(f func()) {
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			f()
			return // locked: the thread ends with the goroutine
		}
		// On the main thread: hold it while another goroutine locks a
		// thread, which therefore cannot be this one, then let it go.
		locked := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			close(locked)
			f()
		}()
		<-locked
		runtime.UnlockOSThread()
	}()
}
