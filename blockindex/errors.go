package blockindex

import (
	"errors"
	"fmt"
)

// ErrCorrupt is wrapped by every error about an index or a block whose bytes
// are not what they should be. The package knows no error categories (it is
// a leaf): catalog, where an index or a block is read, puts it in
// category.ErrIntegrity (exit 4).
var ErrCorrupt = errors.New("corrupt block index or block")

// corruptError is an ErrCorrupt whose text says what is wrong, and only that.
type corruptError struct{ msg string }

func (e *corruptError) Error() string { return e.msg }
func (e *corruptError) Unwrap() error { return ErrCorrupt }

func corruptf(format string, args ...any) error {
	return &corruptError{fmt.Sprintf(format, args...)}
}
