// Package category declares the categories of bty's errors, once for every
// package. An error a package returns wraps at most one of them, directly
// ("%w: sha256 mismatch") or through a specific error (flash.IOError,
// disks.RefusedError, a sentinel made with New), and main maps each category
// to its exit code, one row per category:
//
//	ErrUsage 2 · ErrRefused 3 · ErrIntegrity 4 · ErrSource 5 · ErrIO 1 (and any error without one) · context.Canceled 130
//
// It imports nothing of bty's; flash, catalog, disks and the rest wrap it.
package category

import "errors"

var (
	// ErrUsage: a bad flag or argument, or input that cannot be used as
	// written (a catalog, a sha256 sidecar, a DISK argument, a plan).
	ErrUsage = errors.New("usage")
	// ErrRefused: a safety check refused the target (too small, in use, the
	// image itself, a disk's verdict, no disk or several with a serial).
	ErrRefused = errors.New("refused")
	// ErrIntegrity: the bytes are not what they should be (a digest or length
	// mismatch, a corrupt or truncated stream, a tar archive, an image
	// feature bty cannot write).
	ErrIntegrity = errors.New("integrity check failed")
	// ErrSource: the image or catalog cannot be reached or read (not found,
	// network, registry).
	ErrSource = errors.New("source unavailable")
	// ErrIO: reading or writing the target failed.
	ErrIO = errors.New("i/o failed")
)

// New returns a sentinel error whose text is msg and that is in category
// cat for errors.Is: a package's specific error ("disk not found") that
// says its category without saying it in its text.
func New(cat error, msg string) error { return &sentinel{msg, cat} }

type sentinel struct {
	msg string
	cat error
}

func (e *sentinel) Error() string { return e.msg }
func (e *sentinel) Unwrap() error { return e.cat }

// Wrap returns err in category cat for errors.Is, with err's text: how a
// domain package classifies an error of a leaf package (which knows no
// categories) where it surfaces.
func Wrap(cat, err error) error { return &wrapped{err, cat} }

type wrapped struct{ err, cat error }

func (e *wrapped) Error() string   { return e.err.Error() }
func (e *wrapped) Unwrap() []error { return []error{e.err, e.cat} }
