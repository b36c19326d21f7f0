// SPDX-License-Identifier: Apache-2.0

package privdrop

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// validateCaps refuses capabilities the helper could not grant exactly.
func validateCaps(caps []uintptr, uid uint32) error {
	if len(caps) == 0 {
		return nil
	}
	if uid == 0 {
		// The helper leaves a root service root's capabilities;
		// granting a few would only suggest a limit that is not there.
		return errors.New("ambient capabilities for uid 0, which keeps every capability")
	}
	seen := make(map[uintptr]bool, len(caps))
	for _, c := range caps {
		if c > unix.CAP_LAST_CAP {
			return fmt.Errorf("unknown capability %d", c)
		}
		if seen[c] {
			return fmt.Errorf("capability %d is listed twice", c)
		}
		seen[c] = true
	}
	return nil
}
