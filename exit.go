package main

import (
	"context"
	"errors"
	"fmt"

	"bty/category"
)

// Exit codes, as docs/architecture.md defines them.
const (
	exitOK        = 0
	exitIO        = 1   // failed while writing or reading the target
	exitUsage     = 2   // usage or unreadable input
	exitRefused   = 3   // refused by a safety check
	exitIntegrity = 4   // digest or length mismatch, corrupt or truncated, tarball
	exitSource    = 5   // source unavailable
	exitCancelled = 130 // SIGINT/SIGTERM
)

// exitTable maps error categories to exit codes, one row per category. An
// error is in at most one category; where an error joins two (a source error
// that says the registry's bytes are corrupt), the first row wins.
var exitTable = []struct {
	err  error
	code int
}{
	{context.Canceled, exitCancelled},
	{category.ErrUsage, exitUsage},
	{category.ErrIntegrity, exitIntegrity},
	{category.ErrRefused, exitRefused},
	{category.ErrSource, exitSource},
	{category.ErrIO, exitIO},
}

func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	for _, m := range exitTable {
		if errors.Is(err, m.err) {
			return m.code
		}
	}
	if code, ok := reflashCode(err); ok {
		return code
	}
	return exitIO
}

// errUsage is a bad flag or argument.
var errUsage = category.ErrUsage

// usageErr is a usage error whose message is its own, without the category:
// "bty: unknown flag --x (see bty --help)".
type usageErr struct{ error }

func (u usageErr) Unwrap() []error { return []error{errUsage, u.error} }

// errFallback: server-driven mode could not follow a plan and there is no
// wizard to fall back to; category.ErrSource.
var errFallback = category.New(category.ErrSource, "no plan to follow")

func usagef(format string, args ...any) error {
	return usageErr{fmt.Errorf(format, args...)}
}

// reported marks an error that was already printed (e.g. in a JSON result line).
type reported struct{ error }

func (r reported) Unwrap() error { return r.error }

func isReported(err error) bool {
	var r reported
	return errors.As(err, &r)
}
