package main

import (
	"context"
	"errors"
	"fmt"

	"bty/catalog"
	"bty/disks"
	"bty/flash"
	"bty/netboot"
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

// exitTable maps error categories to exit codes; the first match wins, so the
// more specific categories come first.
var exitTable = []struct {
	err  error
	code int
}{
	{context.Canceled, exitCancelled},
	{errUsage, exitUsage},
	{errFallback, exitSource},
	{flash.ErrIntegrity, exitIntegrity},
	{flash.ErrRefused, exitRefused},
	{disks.ErrRefused, exitRefused},
	{disks.ErrNotFound, exitRefused}, // docs/architecture.md: "serial not found" is a refusal
	{disks.ErrAmbiguous, exitRefused},
	{disks.ErrBadSpec, exitUsage},
	{flash.ErrUnsupported, exitIntegrity},
	{catalog.ErrInvalidSidecar, exitUsage},
	{catalog.ErrInvalid, exitUsage},
	{catalog.ErrIndex, exitUsage},
	{catalog.ErrNotImage, exitUsage},
	{catalog.ErrIntegrity, exitIntegrity},
	{catalog.ErrNotFound, exitSource},
	{catalog.ErrUnavailable, exitSource},
	{netboot.ErrPrivilege, exitUsage}, // the command line or the machine must change
	{netboot.ErrConfig, exitUsage},
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
	var ioe *flash.IOError
	if errors.As(err, &ioe) {
		if ioe.Side == flash.SideSource {
			return exitSource
		}
		return exitIO
	}
	return exitIO
}

// errUsage is a bad flag or argument.
var errUsage = errors.New("usage")

// usageErr is a usage error whose message is its own, without the category:
// "bty: unknown flag --x (see bty --help)".
type usageErr struct{ error }

func (u usageErr) Unwrap() []error { return []error{errUsage, u.error} }

// errFallback: server-driven mode could not follow a plan and there is no
// wizard to fall back to.
var errFallback = errors.New("no plan to follow")

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
