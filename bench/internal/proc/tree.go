package proc

import (
	"os"
	"strconv"
	"strings"
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

// children returns pid's child processes. The kernel lists them per
// thread, and a Go supervisor forks from any of its threads, so every
// thread's list is read.
func children(pid int) []int {
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

// Descendants returns the processes below root (root excluded),
// breadth first. descend, when not nil, says whether to look below a
// process; leaves such as a service's own process need not be read.
func Descendants(root int, descend func(Node) bool) []Node {
	var out []Node
	queue := children(root)
	for len(queue) > 0 && len(out) < maxTree {
		pid := queue[0]
		queue = queue[1:]
		p := Node{pid, comm(pid)}
		if p.Comm == "" {
			continue // gone since its parent was read
		}
		out = append(out, p)
		if descend == nil || descend(p) {
			queue = append(queue, children(pid)...)
		}
	}
	return out
}
