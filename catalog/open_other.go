//go:build !unix

package catalog

import (
	"fmt"
	"os"
)

// openNoFollow opens path for reading, refusing a symlink. Without O_NOFOLLOW
// the check and the open are two steps.
func openNoFollow(path string) (*os.File, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		return nil, &os.PathError{Op: "open", Path: path, Err: fmt.Errorf("is a symlink")}
	}
	return os.Open(path)
}
