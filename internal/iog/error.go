package iog

import (
	"errors"
	"fmt"
	"time"

	"github.com/iognet/iog/api/wire"
)

// Error codes users see (the wire's, api/wire); the HTTP layer maps each to one status code.
const (
	ENOTFOUND          = wire.ENOTFOUND
	EINVALID           = wire.EINVALID
	ECONFLICT          = wire.ECONFLICT
	EUNAUTHORIZED      = wire.EUNAUTHORIZED
	EGONE              = wire.EGONE // the device that signed is not (or no longer) registered: final
	EFORBIDDEN         = wire.EFORBIDDEN
	EINSUFFICIENTFUNDS = wire.EINSUFFICIENTFUNDS
	EUNAVAILABLE       = wire.EUNAVAILABLE
	ERATELIMITED       = wire.ERATELIMITED // too many requests; RetryAfter says when to try again
	EINTERNAL          = wire.EINTERNAL
)

// Error is an error a user can act on: a code and a readable message.
type Error struct {
	Code    string
	Message string
	// RetryAfter is when trying again makes sense (ERATE_LIMITED); zero when unknown.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Limited is an ERATE_LIMITED error that says when to try again.
func Limited(retry time.Duration, format string, args ...any) *Error {
	return &Error{Code: ERATELIMITED, Message: fmt.Sprintf(format, args...), RetryAfter: retry}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for any other error
// and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the user-facing message of err: the *Error's message, or a generic one
// for internal errors so that internals do not leak.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
