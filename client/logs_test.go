package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/udsvisor/udsvisor/api"
)

func logLine(i int) api.LogLine {
	return api.LogLine{
		Time: time.Date(2026, 11, 25, 12, 0, i, 0, time.UTC),
		Pid:  42, Stream: "stdout", Line: "line " + string(rune('a'+i)),
	}
}

func TestLogsLastLines(t *testing.T) {
	var query string
	sock := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		query = r.Method + " " + r.URL.EscapedPath() + "?" + r.URL.RawQuery
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		for i := range 3 {
			enc.Encode(logLine(i))
		}
	}))
	var got []api.LogLine
	err := New(sock).Logs(context.Background(), "web", 3, false, func(l api.LogLine) error {
		got = append(got, l)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "GET /v1/services/web/logs?lines=3"; query != want {
		t.Errorf("server saw %q, want %q", query, want)
	}
	if want := []api.LogLine{logLine(0), logLine(1), logLine(2)}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// followServer streams each line sent on lines as soon as it arrives, like
// the real server's follow, and closes gone when the client has hung up.
func followServer(t *testing.T) (sock string, lines chan<- api.LogLine, gone <-chan struct{}, query <-chan string) {
	t.Helper()
	ch := make(chan api.LogLine)
	done := make(chan struct{})
	// Buffered to 1: the one request's query, read once by the test.
	q := make(chan string, 1)
	sock = serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		q <- r.URL.RawQuery
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		enc := json.NewEncoder(w)
		for {
			select {
			case l := <-ch:
				enc.Encode(l)
				w.(http.Flusher).Flush()
			case <-r.Context().Done():
				return
			}
		}
	}))
	return sock, ch, done, q
}

func TestLogsFollowStreamsUntilCancelled(t *testing.T) {
	sock, lines, gone, query := followServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Each line must reach fn while the response is still open: the test
	// sends the next line only after fn has seen the previous one.
	received := make(chan api.LogLine)
	errc := make(chan error, 1) // Logs's result, read once
	go func() {
		errc <- New(sock).Logs(ctx, "web", 0, true, func(l api.LogLine) error {
			received <- l
			return nil
		})
	}()
	if q := <-query; q != "follow=1&lines=0" {
		t.Errorf("query %q, want follow=1&lines=0", q)
	}
	for i := range 3 {
		lines <- logLine(i)
		if got := <-received; !reflect.DeepEqual(got, logLine(i)) {
			t.Fatalf("line %d: got %+v", i, got)
		}
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Logs returned %v, want context.Canceled", err)
	}
	// The server's request context ends only when the connection closes.
	<-gone
}

func TestLogsCallbackErrorStopsTheStream(t *testing.T) {
	sock, lines, gone, _ := followServer(t)
	stop := errors.New("enough")
	errc := make(chan error, 1) // Logs's result, read once
	go func() {
		errc <- New(sock).Logs(context.Background(), "web", 10, true, func(api.LogLine) error {
			return stop
		})
	}()
	lines <- logLine(0)
	if err := <-errc; err != stop {
		t.Errorf("Logs returned %v, want %v", err, stop)
	}
	<-gone
}

func TestLogsUnknownService(t *testing.T) {
	sock := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"error":"unknown service \"nosuch\""}`))
	}))
	called := false
	err := New(sock).Logs(context.Background(), "nosuch", 10, true, func(api.LogLine) error {
		called = true
		return nil
	})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 404 {
		t.Fatalf("got %v, want a 404 *APIError", err)
	}
	if called {
		t.Error("fn was called for an error answer")
	}
}
