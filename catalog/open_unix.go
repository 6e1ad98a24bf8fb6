//go:build unix

package catalog

import (
	"os"
	"syscall"
)

// openNoFollow opens path for reading, refusing a symlink even if one replaced
// the file after a check (O_NOFOLLOW), without hanging on a FIFO (O_NONBLOCK;
// regular files ignore it).
func openNoFollow(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
}
