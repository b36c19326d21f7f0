// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/udsvisor/udsvisor/client"
)

// upgradePoll is how often ctl upgrade asks how the upgrade went.
const upgradePoll = 100 * time.Millisecond

// upgrade is `ctl upgrade`: udsvisor checks and executes the binary on
// disk in place; ctl then waits, asking the control socket (whose
// clients queue in the backlog meanwhile), until the new binary answers
// having taken over, or the old one answers with the reason it did not.
func (c *ctl) upgrade(ctx context.Context, args []string) error {
	fs := c.flags("upgrade", "[-timeout D] [--json]")
	timeout := fs.Duration("timeout", 90*time.Second, "how long to wait for the new binary to answer")
	asJSON := fs.Bool("json", false, "print the new state as a JSON object")
	before, err := query(ctx, c, fs, args, (*client.Client).Upgrade)
	if err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	for {
		now, err := cl.UpgradeStatus(ctx)
		switch {
		case err == nil && now.Upgrades > before.Upgrades:
			if *asJSON {
				return writeJSONLine(c.stdout, now)
			}
			fmt.Fprintf(c.stdout, "upgraded in place: pid %d, udsvisor %s -> %s\n", now.Pid, before.Version, now.Version)
			return nil
		case err == nil && now.LastErrorAt.After(before.LastErrorAt):
			if *asJSON {
				writeJSONLine(c.stdout, now)
			}
			return fmt.Errorf("upgrade failed; udsvisor %s goes on as it was: %s", now.Version, now.LastError)
		case ctx.Err() != nil:
			return fmt.Errorf("upgrade: no answer within %s: %w", *timeout, errors.Join(err, ctx.Err()))
		}
		select {
		case <-time.After(upgradePoll):
		case <-ctx.Done():
		}
	}
}
