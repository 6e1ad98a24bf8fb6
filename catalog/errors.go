package catalog

import "errors"

var (
	// ErrUnavailable: a source could not be reached or read (network, registry,
	// missing file). Maps to exit code 5.
	ErrUnavailable = errors.New("source unavailable")
	// ErrNotFound: the server or file system says the thing does not exist.
	ErrNotFound = errors.New("not found")
	// ErrChanged: the bytes at a URL changed between two attempts (ETag or
	// Last-Modified differ), so a resumed download would splice two versions.
	ErrChanged = errors.New("source changed while downloading")
)

// sourceError is a source failure; Permanent tells the flash engine whether a
// retry could help.
type sourceError struct {
	err       error
	permanent bool
}

func (e *sourceError) Error() string   { return e.err.Error() }
func (e *sourceError) Unwrap() []error { return []error{e.err, ErrUnavailable} }
func (e *sourceError) Permanent() bool { return e.permanent }
