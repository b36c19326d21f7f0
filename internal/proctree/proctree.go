// SPDX-License-Identifier: Apache-2.0

// Package proctree reads the process tree from /proc.
package proctree

import (
	"os"
	"strconv"
	"strings"
)

// Children returns pid's child processes. The kernel lists them per
// thread (/proc/PID/task/TID/children), and a Go program forks from any
// of its threads, so every thread's list is read.
func Children(pid int) []int {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var kids []int
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				kids = append(kids, n)
			}
		}
	}
	return kids
}
