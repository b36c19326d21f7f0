// SPDX-License-Identifier: Apache-2.0

//go:build linux

package client_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/udsvisor/udsvisor/api"
	"github.com/udsvisor/udsvisor/client"
	"github.com/udsvisor/udsvisor/internal/controltest"
	"github.com/udsvisor/udsvisor/supervisor"
)

// TestLogsFollowStreamsUntilCancelled: each line reaches the callback
// while the response is still open (the next is logged only after the
// callback saw the previous one), and cancelling the context ends the
// stream with context.Canceled and the server's subscription with it.
func TestLogsFollowStreamsUntilCancelled(t *testing.T) {
	sock, f := controltest.Start(t, supervisor.Status{Name: "web", State: supervisor.Running, Pid: 42})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	received := make(chan api.LogLine)
	errc := make(chan error, 1) // Logs's result, read once
	go func() {
		errc <- client.New(sock).Logs(ctx, "web", 0, true, func(l api.LogLine) error {
			received <- l
			return nil
		})
	}()
	wait, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	if err := f.WaitFollowers(wait, "web", 1); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		l := api.LogLine{Time: time.Date(2026, 11, 25, 12, 0, i, 0, time.UTC), Pid: 42, Stream: "stdout", Line: string(rune('a' + i))}
		f.Log("web", supervisor.LogLine(l))
		if got := <-received; !reflect.DeepEqual(got, l) {
			t.Fatalf("line %d: got %+v, want %+v", i, got, l)
		}
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Logs returned %v, want context.Canceled", err)
	}
	if err := f.WaitFollowers(wait, "web", 0); err != nil {
		t.Error(err)
	}
}
