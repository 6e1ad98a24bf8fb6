package disks

import (
	"fmt"
	"strings"

	"bty/category"
)

var (
	// ErrNotFound: no disk matches the DISK argument (no such device, not a
	// whole disk bty lists, or no disk has that serial); category.ErrRefused.
	ErrNotFound = category.New(category.ErrRefused, "disk not found")
	// ErrAmbiguous: serial:S matches more than one disk; category.ErrRefused.
	ErrAmbiguous = category.New(category.ErrRefused, "disk ambiguous")
	// ErrBadSpec: the DISK argument is not one of the accepted forms, or names a
	// partition instead of a whole disk; category.ErrUsage.
	ErrBadSpec = category.New(category.ErrUsage, "bad disk argument")
)

// RefusedError is a target refused by its verdict; it is in category.ErrRefused.
type RefusedError struct {
	Disk    string   // device path, e.g. /dev/sda
	Reasons []string // the verdict's reasons
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%s: refused: %s", e.Disk, strings.Join(e.Reasons, "; "))
}

func (e *RefusedError) Unwrap() error { return category.ErrRefused }
