package media

import (
	"errors"
	"fmt"
)

var (
	// ErrInput: an input cannot be used as given (not a kernel, no modules, a
	// dynamically linked binary, an image name exFAT cannot hold, too small a
	// size).
	ErrInput = errors.New("unusable input")
	// ErrMissingTool: something the builder takes from the host is not
	// installed; the error names the Debian package that provides it.
	ErrMissingTool = errors.New("missing host tool")
)

// MissingToolError names a host file the builder needs and the Debian package
// that provides it.
type MissingToolError struct {
	Path    string // what was looked for
	Package string // Debian package to install
	Why     string // what it is for
}

func (e *MissingToolError) Error() string {
	return fmt.Sprintf("%s not found (%s): install the Debian package %s (apt-get install %s)", e.Path, e.Why, e.Package, e.Package)
}

func (e *MissingToolError) Unwrap() error { return ErrMissingTool }

// inputErr is an ErrInput whose message is its own: "kernel x is not an x86
// bzImage", not "unusable input: kernel x ...".
type inputErr struct{ error }

func (e inputErr) Unwrap() []error { return []error{ErrInput, e.error} }

func inputf(format string, args ...any) error {
	return inputErr{fmt.Errorf(format, args...)}
}
