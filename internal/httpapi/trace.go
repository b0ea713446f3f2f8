package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"

	"github.com/iognet/iog/internal/iog"
)

// HeaderRequestID names every answer's request id; an internal error's message carries it too,
// so that what a caller reports can be found in the coordinator's log.
const HeaderRequestID = "X-Request-Id"

// request is what the server knows of one request for its log.
type request struct {
	id, method, path string
	log              *slog.Logger
	once             sync.Once
}

func (s *Server) newRequest(r *http.Request) *request {
	return &request{id: iog.NewID("req"), method: r.Method, path: r.URL.Path, log: s.cfg.Log}
}

// requestOf is the request a context (of a handler) or a writer (the server's recorder) belongs
// to; nil outside the server.
func requestOf(ctx context.Context, w http.ResponseWriter) *request {
	if ctx != nil {
		if q, ok := ctx.Value(keyRequest).(*request); ok {
			return q
		}
	}
	if rec, ok := w.(*statusRecorder); ok {
		return rec.req
	}
	return nil
}

// internal logs an internal error once per request, at the place that maps it to an answer:
// the caller sees only the request id, the log has the whole error.
func (q *request) internal(err error) {
	if q == nil {
		return
	}
	q.once.Do(func() {
		q.log.Error("internal error", "request", q.id, "method", q.method, "path", q.path, "err", err)
	})
}

// traced is fail for a request: an internal error is logged with the request id, which its
// message names.
func traced(q *request, err error) error {
	e := fail(err)
	var ae *apiError
	if errors.As(e, &ae) && ae.Code == iog.EINTERNAL {
		q.internal(err)
		if q != nil {
			ae.Message = "internal error (request " + q.id + "); the coordinator's log has the details"
		}
	}
	return e
}
