package disks

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrNotFound: no disk matches the DISK argument (no such device, not a
	// whole disk bty lists, or no disk has that serial). Exit code 3.
	ErrNotFound = errors.New("disk not found")
	// ErrAmbiguous: serial:S matches more than one disk. Exit code 3.
	ErrAmbiguous = errors.New("disk ambiguous")
	// ErrBadSpec: the DISK argument is not one of the accepted forms, or names a
	// partition instead of a whole disk. Exit code 2.
	ErrBadSpec = errors.New("bad disk argument")
	// ErrRefused: the disk's verdict is Refused. Exit code 3.
	ErrRefused = errors.New("refused")
)

// RefusedError is a target refused by its verdict; it wraps ErrRefused.
type RefusedError struct {
	Disk    string   // device path, e.g. /dev/sda
	Reasons []string // the verdict's reasons
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%s: refused: %s", e.Disk, strings.Join(e.Reasons, "; "))
}

func (e *RefusedError) Unwrap() error { return ErrRefused }
