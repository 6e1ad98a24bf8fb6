package media

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// openDisk opens a whole disk for writing, exclusively (O_EXCL on a block
// device: EBUSY while a partition is mounted or otherwise held), and
// returns its size. Only 512-byte logical sectors are taken: the partition
// table is written for them.
func openDisk(path string) (*os.File, int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_EXCL, 0)
	if errors.Is(err, syscall.EBUSY) {
		return nil, 0, inputf("%s is in use (mounted, or held by another program): unmount it first", path)
	}
	if err != nil {
		return nil, 0, err
	}
	ss, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET)
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("%s: logical sector size: %w", path, err)
	}
	if ss != sectorSize {
		f.Close()
		return nil, 0, inputf("%s has %d-byte sectors: the stick is laid out for 512-byte sectors; write it to a USB stick or an image file", path, ss)
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("%s: size: %w", path, err)
	}
	return f, size, nil
}

// rereadPartitions has the kernel read the disk's new partition table.
// EINVAL means the device takes no partitions (a loop device without
// partscan), as flash treats it.
func rereadPartitions(f *os.File) error {
	if err := unix.IoctlSetInt(int(f.Fd()), unix.BLKRRPART, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return err
	}
	return nil
}
