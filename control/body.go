// SPDX-License-Identifier: Apache-2.0

//go:build linux

package control

import (
	"io"
	"net/http"
	"time"
)

// guardBody makes sure that no answer waits for a body the handler did
// not read (T28).
//
// Before it sends an answer given without reading the body (a 403, a
// 404, a malformed body), net/http reads up to 256 KiB of what is left
// of the body in order to keep the connection, and as much again once
// the handler returns. A refusal thus waited for a body that a client
// could announce and never send, holding its connection slot until the
// read deadline, or for ever without one.
//
// So an answer that starts while the body is unread says "Connection:
// close" and moves the connection's read deadline to now: net/http then
// neither reads the body before the answer nor waits for it after, and
// closes the connection. A body the handler reads is bounded by the
// server's ReadTimeout, a request without a body is left alone.
func guardBody(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, *http.Request) {
	if r.Body == nil || r.Body == http.NoBody {
		return w, r
	}
	body := &bodyReader{ReadCloser: r.Body}
	r2 := *r // handlers must not modify the request they are given
	r2.Body = body
	return &bodyGuard{ResponseWriter: w, body: body}, &r2
}

// bodyReader notices when the body has been read to its end. The handler
// reads it on its own goroutine, which is also the one that answers.
type bodyReader struct {
	io.ReadCloser
	done bool // the body was read to EOF
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.done = true
	}
	return n, err
}

// bodyGuard closes the connection after an answer that starts before the
// body was read (see guardBody).
type bodyGuard struct {
	http.ResponseWriter
	body     *bodyReader
	answered bool
}

// answer runs once, before the first byte of the answer.
func (g *bodyGuard) answer() {
	if g.answered {
		return
	}
	g.answered = true
	if g.body.done {
		return
	}
	g.Header().Set("Connection", "close")
	// Fails only for a writer that is not a connection's (a test driving
	// Handler), where nothing waits for the body.
	http.NewResponseController(g.ResponseWriter).SetReadDeadline(time.Now())
}

func (g *bodyGuard) WriteHeader(status int) {
	g.answer()
	g.ResponseWriter.WriteHeader(status)
}

func (g *bodyGuard) Write(b []byte) (int, error) {
	g.answer()
	return g.ResponseWriter.Write(b)
}

// FlushError lets http.ResponseController flush through the guard, which
// a flush before any write would otherwise bypass.
func (g *bodyGuard) FlushError() error {
	g.answer()
	return http.NewResponseController(g.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (g *bodyGuard) Unwrap() http.ResponseWriter { return g.ResponseWriter }
