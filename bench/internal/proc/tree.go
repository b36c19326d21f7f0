// SPDX-License-Identifier: Apache-2.0

//go:build linux

package proc

import (
	"os"
	"strconv"
	"strings"

	"github.com/udsvisor/udsvisor/internal/proctree"
)

// maxTree bounds every walk of a process tree: the largest run has a few
// thousand processes per supervisor, so a walk that finds more is lost.
const maxTree = 20000

// Node is one process found in a tree: its pid and its comm, the
// kernel's name for it (the base name of the program it runs, cut to 15
// bytes).
type Node struct {
	Pid  int
	Comm string
}

// comm returns pid's comm, "" when the process is gone.
func comm(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(b), "\n")
}

// Descendants returns the processes below root (root excluded),
// breadth first. descend, when not nil, says whether to look below a
// process; leaves such as a service's own process need not be read.
func Descendants(root int, descend func(Node) bool) []Node {
	var out []Node
	queue := proctree.Children(root)
	for len(queue) > 0 && len(out) < maxTree {
		pid := queue[0]
		queue = queue[1:]
		p := Node{pid, comm(pid)}
		if p.Comm == "" {
			continue // gone since its parent was read
		}
		out = append(out, p)
		if descend == nil || descend(p) {
			queue = append(queue, proctree.Children(pid)...)
		}
	}
	return out
}
