// SPDX-License-Identifier: Apache-2.0

//go:build linux

package peer

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// copyFile copies an executable into a new root-owned 0755 directory.
func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o755)
}

// run runs a short command of the peer's and returns its output; the
// error carries the output.
func run(ctx context.Context, argv ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s: %w: %.300s", argv[0], err, out)
	}
	return out, nil
}

// Output runs a short command and returns its standard output; the
// error carries its standard error.
func Output(ctx context.Context, argv ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s: %w: %.300s", argv[0], err, stderr.String())
	}
	return out, nil
}

// serviceUser is User's uid and gid, for directories a service writes.
func serviceUser() (uid, gid int, err error) {
	u, err := user.Lookup(User)
	if err != nil {
		return 0, 0, fmt.Errorf("user %s: %w", User, err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, nil
}

// socketDirs makes the directory of every socket: root's 0755 when the
// supervisor binds it (udsvisor also insists on that), the service
// user's when the service binds it itself.
func socketDirs(services []Service, selfBind bool) error {
	uid, gid, err := serviceUser()
	if err != nil {
		return err
	}
	for _, s := range services {
		if s.Socket == "" {
			continue
		}
		d := filepath.Dir(s.Socket)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		if selfBind {
			if err := os.Chown(d, uid, gid); err != nil {
				return err
			}
		}
	}
	return nil
}
