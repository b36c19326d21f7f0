// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/json"
	"log"
	"net/http"
	"strings"

	"github.com/udsvisor/udsvisor/integration/internal/websocket"
	"github.com/udsvisor/udsvisor/internal/testutil/testapp"
)

// proxyHandlers adds what the reverse-proxy tests ask of a backend on the
// socket named socket: GET /headers, and GET /ws, a WebSocket echo.
func proxyHandlers(mux *http.ServeMux, socket string) {
	mux.HandleFunc("GET /headers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(testapp.Forwarded{
			Socket:          socket,
			Host:            r.Host,
			XRealIP:         strings.Join(r.Header.Values("X-Real-IP"), ", "),
			XForwardedFor:   strings.Join(r.Header.Values("X-Forwarded-For"), ", "),
			XForwardedProto: r.Header.Get("X-Forwarded-Proto"),
			Connection:      strings.Join(r.Header.Values("Connection"), ", "),
			Upgrade:         r.Header.Get("Upgrade"),
		})
	})
	mux.HandleFunc("GET /ws", wsEcho)
}

// wsEcho completes a WebSocket handshake on the hijacked connection and
// sends every text message back, prefixed with "echo: ", until the client
// closes. It checks the handshake as an app would: a proxy that drops the
// Upgrade or Connection header gets 400, as it would from a real app.
func wsEcho(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if !headerHasToken(r.Header, "Connection", "upgrade") || !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || key == "" {
		http.Error(w, "not a WebSocket handshake: Connection "+r.Header.Get("Connection")+", Upgrade "+r.Header.Get("Upgrade"), http.StatusBadRequest)
		return
	}
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		log.Printf("ws: hijack: %v", err)
		return
	}
	defer conn.Close()
	rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + websocket.AcceptKey(key) + "\r\n\r\n")
	if err := rw.Flush(); err != nil {
		return
	}
	for {
		op, payload, err := websocket.ReadFrame(rw)
		if err != nil {
			return
		}
		switch op {
		case websocket.OpText:
			err = websocket.WriteFrame(rw, websocket.OpText, append([]byte("echo: "), payload...), false)
		case websocket.OpPing:
			err = websocket.WriteFrame(rw, websocket.OpPong, payload, false)
		case websocket.OpClose:
			websocket.WriteFrame(rw, websocket.OpClose, payload, false)
			rw.Flush()
			return
		}
		if err == nil {
			err = rw.Flush()
		}
		if err != nil {
			return
		}
	}
}

// headerHasToken reports whether the comma-separated header name lists
// token, case-insensitively ("Connection: keep-alive, Upgrade").
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
