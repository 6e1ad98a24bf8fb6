package flash

import (
	"context"
	"fmt"

	"bty/category"
)

// Specific errors, each in one category (bty/category); the caller maps the
// categories to exit codes.
var (
	ErrDigestMismatch = fmt.Errorf("%w: sha256 mismatch", category.ErrIntegrity)
	ErrLengthMismatch = fmt.Errorf("%w: length mismatch", category.ErrIntegrity)
	ErrCorrupt        = fmt.Errorf("%w: corrupt or truncated stream", category.ErrIntegrity)
	ErrTarball        = fmt.Errorf("%w: the image is a tar archive, not a disk image; extract first and flash the disk image inside", category.ErrIntegrity)
	// ErrUnsupported: the image uses a feature bty cannot write (qcow2
	// backing file, external data file, encryption); category.ErrIntegrity.
	ErrUnsupported    = category.New(category.ErrIntegrity, "unsupported image")
	ErrTooLarge       = fmt.Errorf("%w: image is larger than the target", category.ErrRefused)
	ErrTargetInUse    = fmt.Errorf("%w: target is in use (mounted, held, or opened exclusively by another program)", category.ErrRefused)
	ErrTargetIsSource = fmt.Errorf("%w: target is the image file itself", category.ErrRefused)
)

// OverrunError: the decoded image went on past the end of the target device,
// found only while writing because its size could not be known before (a gzip
// or bzip2 stream, a pipe). The target was written up to its end. It is in the
// category.ErrRefused, and says plainly that the target was written.
type OverrunError struct {
	Target     string
	TargetSize int64 // bytes
	AtLeast    int64 // the image holds at least this many bytes
}

func (e *OverrunError) Error() string {
	return fmt.Sprintf("the target is too small: %s was written up to its end (%d bytes of an image of at least %d)", e.Target, e.TargetSize, e.AtLeast)
}

func (e *OverrunError) Unwrap() error { return category.ErrRefused }

// CancelError is a flash cancelled through its context, in plain words:
// "cancelled (interrupt signal received)", never "context canceled". It is
// context.Canceled for errors.Is, so callers still map it to their exit.
type CancelError struct {
	Cause error // context.Cause of the cancelled context; nil or context.Canceled says no more
}

func (e *CancelError) Error() string {
	if e.Cause == nil || e.Cause == context.Canceled {
		return "cancelled"
	}
	return "cancelled (" + e.Cause.Error() + ")"
}

func (e *CancelError) Unwrap() error { return context.Canceled }

// Side says which end of the pipeline failed.
type Side string

const (
	SideSource Side = "source"
	SideTarget Side = "target"
)

// IOError is a failure to read the source or to write the target that is not an
// integrity or safety problem: a network that stayed down, a disk that returned EIO.
// It is in category.ErrSource or category.ErrIO, by its side.
type IOError struct {
	Side Side
	Err  error
}

func (e *IOError) Error() string { return fmt.Sprintf("%s: %v", e.Side, e.Err) }

func (e *IOError) Unwrap() []error {
	if e.Side == SideSource {
		return []error{e.Err, category.ErrSource}
	}
	return []error{e.Err, category.ErrIO}
}
