// SPDX-License-Identifier: Apache-2.0

//go:build linux

package control

import (
	"context"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/supervisor"
)

// Backend is what the control API drives: the supervisor (a fake in
// tests). Errors are mapped to status codes with errors.Is / errors.As:
// supervisor.ErrUnknownService → 404, supervisor.ErrNotRunning,
// supervisor.ErrNotPaused and supervisor.ErrStartFailed → 409,
// supervisor.ErrShuttingDown and supervisor.ErrReplaced → 503,
// config.Errors → 422 (each error in api.Error.Details), anything else →
// 500. Turning its answers into the API's JSON types is this package's
// job (convert.go).
type Backend interface {
	// List returns every service, sorted by name.
	List(ctx context.Context) ([]supervisor.Status, error)
	Status(ctx context.Context, name string) (supervisor.Status, error)
	Start(ctx context.Context, name string) error
	// Stop returns once the service's process is gone.
	Stop(ctx context.Context, name string) error
	Restart(ctx context.Context, name string) error
	// Pause stops the service's process and leaves the service paused;
	// Resume starts a paused service (supervisor.ErrNotPaused → 409).
	Pause(ctx context.Context, name string) error
	Resume(ctx context.Context, name string) error
	// Scale sets the number of instances (supervisor.ErrBadScale → 400).
	Scale(ctx context.Context, name string, n int) error
	// Signal sends sig to the process group of the running service.
	Signal(ctx context.Context, name string, sig unix.Signal) error
	// Logs returns the last n lines the service wrote (n <= 0: all kept).
	Logs(ctx context.Context, name string, n int) ([]supervisor.LogLine, error)
	// Follow streams new lines until ctx is done, then closes the channel.
	Follow(ctx context.Context, name string) (<-chan supervisor.LogLine, error)
	// Reload re-reads the config file udsvisor was started with.
	Reload(ctx context.Context) (supervisor.ReloadResult, error)
}
