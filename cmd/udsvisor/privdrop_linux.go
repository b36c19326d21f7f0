// SPDX-License-Identifier: Apache-2.0

package main

// Linked for its launch helper: a C constructor that runs before main
// and, in the helper process, never returns to Go.
import _ "github.com/udsvisor/udsvisor/privdrop"
