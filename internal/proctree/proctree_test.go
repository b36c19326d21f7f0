// SPDX-License-Identifier: Apache-2.0

package proctree

import (
	"os"
	"os/exec"
	"slices"
	"testing"
)

// A child started from this process is among its children until reaped.
func TestChildren(t *testing.T) {
	cmd := exec.Command("/bin/sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	if kids := Children(os.Getpid()); !slices.Contains(kids, cmd.Process.Pid) {
		t.Errorf("Children = %v, want %d among them", kids, cmd.Process.Pid)
	}
	if kids := Children(-1); kids != nil {
		t.Errorf("Children(-1) = %v, want none", kids)
	}
}
