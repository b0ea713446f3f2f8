package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/iognet/iog/internal/iog"
)

// statusOf is the one place where error codes become HTTP statuses.
func statusOf(code string) int {
	switch code {
	case iog.ENOTFOUND:
		return http.StatusNotFound
	case iog.EINVALID:
		return http.StatusBadRequest
	case iog.ECONFLICT:
		return http.StatusConflict
	case iog.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case iog.EGONE:
		return http.StatusGone
	case iog.EFORBIDDEN:
		return http.StatusForbidden
	case iog.EINSUFFICIENTFUNDS:
		return http.StatusPaymentRequired
	case iog.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	case iog.ERATELIMITED:
		return http.StatusTooManyRequests
	default:
		return http.StatusInternalServerError
	}
}

// Status is statusOf for the console (internal/web), which answers with pages, not JSON.
func Status(code string) int { return statusOf(code) }

// codeOf maps a status that huma produced itself (validation, body limits) back to a code.
func codeOf(status int) string {
	switch {
	case status == http.StatusNotFound:
		return iog.ENOTFOUND
	case status == http.StatusUnauthorized:
		return iog.EUNAUTHORIZED
	case status == http.StatusGone:
		return iog.EGONE
	case status == http.StatusForbidden:
		return iog.EFORBIDDEN
	case status == http.StatusConflict:
		return iog.ECONFLICT
	case status == http.StatusTooManyRequests:
		return iog.ERATELIMITED
	case status >= 400 && status < 500:
		return iog.EINVALID
	default:
		return iog.EINTERNAL
	}
}

// apiError is the JSON body of every error: {"code": ..., "message": ...}.
type apiError struct {
	status     int
	retryAfter time.Duration
	Code       string `json:"code"`
	Message    string `json:"message"`
}

func (e *apiError) Error() string  { return e.Message }
func (e *apiError) GetStatus() int { return e.status }

// GetHeaders gives a rate-limited answer its Retry-After (huma.HeadersError).
func (e *apiError) GetHeaders() http.Header {
	if e.retryAfter <= 0 {
		return nil
	}
	return http.Header{"Retry-After": []string{retryAfter(e.retryAfter)}}
}

// retryAfter is a Retry-After value: whole seconds, rounded up, at least 1.
func retryAfter(d time.Duration) string {
	return strconv.FormatInt(max(1, int64((d+time.Second-1)/time.Second)), 10)
}

// fail turns any error into the API's error body.
func fail(err error) error {
	var se huma.StatusError
	if errors.As(err, &se) {
		return se
	}
	code := iog.ErrorCode(err)
	ae := &apiError{status: statusOf(code), Code: code, Message: iog.ErrorMessage(err)}
	var ie *iog.Error
	if errors.As(err, &ie) {
		ae.retryAfter = ie.RetryAfter
	}
	return ae
}

// newHumaError replaces huma's default error model so that its own validation errors carry our
// codes too. Huma exposes this as a package variable; it is set once, in New.
func newHumaError(status int, msg string, errs ...error) huma.StatusError {
	if status == http.StatusUnprocessableEntity {
		status = http.StatusBadRequest
	}
	parts := []string{msg}
	for _, e := range errs {
		if e == nil {
			continue
		}
		var d *huma.ErrorDetail
		if errors.As(e, &d) {
			parts = append(parts, strings.TrimSpace(d.Message+" ("+d.Location+")"))
			continue
		}
		parts = append(parts, e.Error())
	}
	return &apiError{status: status, Code: codeOf(status), Message: strings.Join(parts, ": ")}
}
