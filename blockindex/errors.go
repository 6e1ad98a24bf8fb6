package blockindex

import (
	"fmt"

	"bty/category"
)

// ErrCorrupt is wrapped by every error about an index or a block whose bytes
// are not what they should be; it is in category.ErrIntegrity.
var ErrCorrupt = category.New(category.ErrIntegrity, "corrupt block index or block")

// corruptError is an ErrCorrupt whose text says what is wrong, and only that.
type corruptError struct{ msg string }

func (e *corruptError) Error() string { return e.msg }
func (e *corruptError) Unwrap() error { return ErrCorrupt }

func corruptf(format string, args ...any) error {
	return &corruptError{fmt.Sprintf(format, args...)}
}
