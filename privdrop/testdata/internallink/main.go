// SPDX-License-Identifier: Apache-2.0

// Command internallink does nothing but link privdrop. The test
// TestHelperWithoutConstructor builds it with -ldflags=-linkmode=internal,
// which leaves out the launch helper's C constructor, and runs it as the
// helper.
package main

import _ "github.com/udsvisor/udsvisor/privdrop"

func main() {}
