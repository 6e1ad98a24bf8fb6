//go:build !linux

package media

import (
	"os"
)

// openDisk: writing a disk in place is for Linux; elsewhere, write an image
// file and flash it.
func openDisk(path string) (*os.File, int64, error) {
	return nil, 0, inputf("%s is a disk: bty media writes disks on Linux only; write an image file and flash it with bty", path)
}

func rereadPartitions(f *os.File) error { return nil }
