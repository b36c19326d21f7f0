// SPDX-License-Identifier: Apache-2.0

//go:build linux

package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"go.uber.org/zap"

	"github.com/udsvisor/udsvisor/api"
	"github.com/udsvisor/udsvisor/config"
	"github.com/udsvisor/udsvisor/supervisor"
)

// maxBody caps request bodies; the largest legitimate one is a few bytes.
const maxBody = 64 << 10

// reqError is a problem with the request itself, answered with status.
type reqError struct {
	status int
	msg    string
}

func (e *reqError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &reqError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// errorResponse maps err to a status and body, as backend.go documents.
func errorResponse(err error) (int, api.Error) {
	body := api.Error{Error: err.Error()}
	var re *reqError
	var ces config.Errors
	switch {
	case errors.As(err, &re):
		return re.status, body
	case errors.Is(err, supervisor.ErrBadScale):
		return http.StatusBadRequest, body
	case errors.Is(err, supervisor.ErrUnknownService):
		return http.StatusNotFound, body
	case errors.Is(err, supervisor.ErrNotRunning), errors.Is(err, supervisor.ErrNotPaused),
		errors.Is(err, supervisor.ErrStartFailed), errors.Is(err, ErrUpgradeRefused):
		return http.StatusConflict, body
	case errors.Is(err, supervisor.ErrShuttingDown), errors.Is(err, supervisor.ErrReplaced),
		errors.Is(err, supervisor.ErrUpgrading):
		return http.StatusServiceUnavailable, body
	case errors.As(err, &ces):
		body.Error = fmt.Sprintf("%d error(s) in the config; nothing was changed", len(ces))
		for _, e := range ces {
			body.Details = append(body.Details, e.Error())
		}
		return http.StatusUnprocessableEntity, body
	default:
		return http.StatusInternalServerError, body
	}
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, body := errorResponse(err)
	if status == http.StatusInternalServerError {
		s.log.Error("control: request failed", zap.String("method", r.Method),
			zap.String("path", r.URL.Path), zap.Error(err))
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only the api types are encoded here; they always marshal.
		status = http.StatusInternalServerError
		b, _ = json.Marshal(api.Error{Error: "encode response: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// decodeBody decodes the request body strictly into v: one JSON value,
// no unknown fields, nothing after it, at most maxBody bytes. With
// allowEmpty, an empty body leaves v as it is.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool) error {
	body := http.MaxBytesReader(w, r.Body, maxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			if allowEmpty {
				return nil
			}
			return badRequest("request body is empty")
		}
		return bodyError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return bodyError(err)
		}
		return badRequest("decode request body: data after the JSON value")
	}
	return nil
}

func bodyError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return badRequest("request body is larger than %d bytes", mbe.Limit)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The server's ReadTimeout passed before the body arrived.
		return &reqError{status: http.StatusRequestTimeout, msg: "request body did not arrive in time"}
	}
	return badRequest("decode request body: %v", err)
}

// headerRecorder captures what the mux's own 404 and 405 handlers
// answer, so that dispatch can say the same in JSON.
type headerRecorder struct {
	h      http.Header
	status int
}

func (r *headerRecorder) Header() http.Header         { return r.h }
func (r *headerRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *headerRecorder) WriteHeader(status int)      { r.status = status }

// statusWriter remembers the status of a response for the audit log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
