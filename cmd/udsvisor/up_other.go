// SPDX-License-Identifier: Apache-2.0

//go:build !linux

package main

import (
	"fmt"
	"io"
	"runtime"
)

// The hidden arguments of the upgrade check and of the relay, which only
// a Linux udsvisor up runs.
const (
	upgradeCheckArg = "__udsvisor_upgrade_check"
	relayArg        = "__relay"
)

// errUpUnsupported says which part is missing: the launch helper
// (privdrop/helper_linux.c) and the socket and supervisor code under it
// use Linux interfaces (openat2, close_range, pidfds, no_new_privs,
// ambient capabilities, PR_SET_CHILD_SUBREAPER) that have no port yet.
var errUpUnsupported = fmt.Errorf("up is not supported on %s: the launch helper and the supervisor are Linux-only (ctl, proxy and version work)", runtime.GOOS)

// upSupported is the error up would return, for check to fail with.
func upSupported() error { return errUpUnsupported }

func runUp([]string, io.Writer) error { return errUpUnsupported }

func runUpgradeCheck([]string, io.Writer) error { return errUpUnsupported }

func runRelay([]string, io.Writer) error { return errUpUnsupported }
