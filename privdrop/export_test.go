// SPDX-License-Identifier: Apache-2.0

//go:build linux

package privdrop

import "os/exec"

// The external tests start the helper by hand, without a Launcher.

// Cmd is the command that runs the launch helper.
func (l *Launch) Cmd() *exec.Cmd { return l.cmd }

// HelperArg is helperArg.
const HelperArg = helperArg
