package ui

import (
	"context"
	"errors"
	"strings"
)

// cancelled is a cancellation in plain words; it wraps context.Canceled, so
// that it still means exit code 130.
type cancelled struct{ why string }

func (c cancelled) Error() string { return c.why }
func (cancelled) Unwrap() error   { return context.Canceled }

var (
	errCancelled   = cancelled{"cancelled at your request"}
	errInterrupted = cancelled{"cancelled by a signal (SIGINT or SIGTERM)"}
)

// plainError is err with its message in plain words: the context package's
// "context canceled" and "context deadline exceeded" never reach a user.
type plainError struct{ err error }

func (e plainError) Error() string { return plainText(e.err) }
func (e plainError) Unwrap() error { return e.err }

func plainText(err error) string {
	if err == nil {
		return ""
	}
	var c cancelled
	if errors.As(err, &c) {
		return c.why
	}
	s := err.Error()
	s = strings.ReplaceAll(s, context.Canceled.Error(), "cancelled")
	return strings.ReplaceAll(s, context.DeadlineExceeded.Error(), "timed out")
}

// oneLine is an error's message on one line (an invalid catalog lists its
// problems on several).
func oneLine(err error) string {
	s := plainText(err)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " ..."
	}
	return s
}
