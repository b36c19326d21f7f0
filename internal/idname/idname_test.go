// SPDX-License-Identifier: Apache-2.0

package idname

import "testing"

func TestNames(t *testing.T) {
	// 0 is root on every Linux; 4294967294 is (uint32)-2, which no
	// passwd or group file names.
	if got := User(0); got != "root" {
		t.Errorf("User(0) = %q, want root", got)
	}
	if got := Group(0); got != "root" {
		t.Errorf("Group(0) = %q, want root", got)
	}
	if got := User(4294967294); got != "4294967294" {
		t.Errorf("User(4294967294) = %q, want the number", got)
	}
	if got := Group(4294967294); got != "4294967294" {
		t.Errorf("Group(4294967294) = %q, want the number", got)
	}
}
