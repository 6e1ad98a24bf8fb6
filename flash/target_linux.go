package flash

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"bty/category"
)

type targetSys struct {
	fd       int      // O_DIRECT (and O_EXCL on a device) descriptor
	buffered *os.File // opened on first use, for pieces O_DIRECT cannot take
	dev      uint64   // st_dev/st_ino of a file target, to spot the source itself
	ino      uint64

	// The writer goroutines zero ranges concurrently; once the device says
	// it does not support a way of zeroing, later ranges skip it.
	noPunch atomic.Bool // fallocate(PUNCH_HOLE) unsupported: BLKZEROOUT instead
	noZero  atomic.Bool // BLKZEROOUT unsupported: write zeros instead
	// punch and zeroOut are the two zeroing calls of a device. They are
	// fields so that a test can make one fail in ways no real device can be
	// made to (an EIO, an unsupported BLKZEROOUT).
	punch, zeroOut func(fd int, off, n int64) error
}

func punchHole(fd int, off, n int64) error {
	return unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
}

// noZeroOut is a file's BLKZEROOUT: there is none (zeroRange writes zeros
// where a punch fails).
func noZeroOut(int, int64, int64) error { return unix.EOPNOTSUPP }

func blkZeroOut(fd int, off, n int64) error {
	r := [2]uint64{uint64(off), uint64(n)}
	return ioctl(fd, unix.BLKZEROOUT, uintptr(unsafe.Pointer(&r)))
}

// openTarget opens a block device with O_DIRECT|O_EXCL (the kernel refuses the
// exclusive open while a partition is mounted or held, its last word on "in use"),
// or creates/opens a regular file with O_DIRECT where the file system allows it.
func openTarget(path string) (*target, error) {
	var st unix.Stat_t
	err := unix.Stat(path, &st)
	switch {
	case err == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK:
		return openDevice(path)
	case err == nil && st.Mode&unix.S_IFMT != unix.S_IFREG:
		return nil, fmt.Errorf("%w: %s is neither a block device nor a regular file", category.ErrRefused, path)
	case err != nil && !errors.Is(err, unix.ENOENT):
		return nil, &IOError{Side: SideTarget, Err: &os.PathError{Op: "stat", Path: path, Err: err}}
	}
	t := &target{path: path, size: -1, align: 4096, direct: true, sys: targetSys{punch: punchHole, zeroOut: noZeroOut}}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_DIRECT|unix.O_CLOEXEC, 0o644)
	if errors.Is(err, unix.EINVAL) {
		// tmpfs and some FUSE file systems refuse O_DIRECT; write through the
		// page cache and rely on fdatasync.
		t.direct = false
		fd, err = unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
	}
	if err != nil {
		return nil, targetOpenError(path, err)
	}
	t.sys.fd = fd
	if unix.Fstat(fd, &st) == nil {
		t.sys.dev, t.sys.ino = st.Dev, st.Ino
	}
	return t, nil
}

func openDevice(path string) (*target, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_DIRECT|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, targetOpenError(path, err)
	}
	t := &target{path: path, isDev: true, direct: true, sys: targetSys{fd: fd, punch: punchHole, zeroOut: blkZeroOut}}
	// BLKGETSIZE64: the device size in bytes (the 512-byte-sector BLKGETSIZE
	// overflows on large disks).
	var size uint64
	if err := ioctl(fd, unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&size))); err != nil {
		unix.Close(fd)
		return nil, &IOError{Side: SideTarget, Err: &os.PathError{Op: "ioctl BLKGETSIZE64", Path: path, Err: err}}
	}
	t.size = int64(size)
	// BLKSSZGET: the logical sector size, the unit O_DIRECT offsets and lengths
	// and BLKZEROOUT ranges must be multiples of. Fall back to 4096, which every
	// logical sector size divides.
	var lbs int32
	if err := ioctl(fd, unix.BLKSSZGET, uintptr(unsafe.Pointer(&lbs))); err != nil || lbs <= 0 {
		lbs = 4096
	}
	t.align = int64(lbs)
	return t, nil
}

func targetOpenError(path string, err error) error {
	switch {
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("%w: %s: unmount its file systems and stop what holds it (LVM, RAID, dm-crypt)", ErrTargetInUse, path)
	case errors.Is(err, unix.EROFS), errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return fmt.Errorf("%w: %s is not writable (%v): check the write-protect switch, or run as root", category.ErrRefused, path, err)
	}
	return &IOError{Side: SideTarget, Err: &os.PathError{Op: "open", Path: path, Err: err}}
}

func ioctl(fd int, req uint, arg uintptr) error {
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), arg); e != 0 {
		return e
	}
	return nil
}

func (t *target) pathErr(op string, err error) error {
	return &IOError{Side: SideTarget, Err: &os.PathError{Op: op, Path: t.path, Err: err}}
}

// writeAt writes p at off through the O_DIRECT descriptor; p, off and len(p) must
// be multiples of t.align (p's address of 4096).
func (t *target) writeAt(p []byte, off int64) error {
	for len(p) > 0 {
		n, err := unix.Pwrite(t.sys.fd, p, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return t.pathErr("write", fmt.Errorf("at offset %d: %w", off, err))
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// writeBuffered writes a piece O_DIRECT cannot take (an unaligned tail) through
// a second, buffered descriptor. Callers write such pieces only after the direct
// writes around them have completed, so the page cache never holds stale data.
func (t *target) writeBuffered(p []byte, off int64) error {
	if t.sys.buffered == nil {
		f, err := os.OpenFile(t.path, os.O_RDWR, 0)
		if err != nil {
			return t.pathErr("open", err)
		}
		t.sys.buffered = f
	}
	if _, err := t.sys.buffered.WriteAt(p, off); err != nil {
		return &IOError{Side: SideTarget, Err: err}
	}
	return nil
}

// zeroRange makes [off, off+n) read as zeros. A file target was truncated by
// prepare, so its ranges are holes already. On a device, fallocate(PUNCH_HOLE)
// asks it to zero the range and lets it deallocate the blocks (WRITE ZEROES with
// unmap: an SSD or a thin volume frees them, a loop device punches a hole in its
// backing file); where the device cannot, BLKZEROOUT zeros it (the kernel writes
// zero pages if need be); where that is not supported either, zeros are written.
// Only "unsupported" turns a way off for good: any other failure of a punch
// (an I/O error on one range) sends that range on to BLKZEROOUT, which reports
// a real failure with its range, and the next range is punched again.
func (t *target) zeroRange(off, n int64) error {
	if !t.isDev && !t.keep {
		return nil
	}
	if !t.sys.noPunch.Load() {
		err := t.sys.punch(t.sys.fd, off, n)
		if err == nil {
			return nil
		}
		// EOPNOTSUPP: the device has no WRITE ZEROES (or the kernel took
		// it away after a failure); ENODEV, ENOSYS: a kernel before 4.9,
		// without fallocate on block devices.
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOSYS) {
			t.sys.noPunch.Store(true)
		}
	}
	if !t.sys.noZero.Load() {
		err := t.sys.zeroOut(t.sys.fd, off, n)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOTTY) && !errors.Is(err, unix.EINVAL) {
			return t.pathErr("ioctl BLKZEROOUT", fmt.Errorf("range %d+%d: %w", off, n, err))
		}
		t.sys.noZero.Store(true)
	}
	for n > 0 {
		c := min(n, int64(len(zeroBlock)))
		if err := t.writeAt(zeroBlock[:c], off); err != nil {
			return err
		}
		off, n = off+c, n-c
	}
	return nil
}

// readAt reads up to len(p) bytes at off through the O_DIRECT descriptor
// (verify); it stops early only at the end of the target.
func (t *target) readAt(p []byte, off int64) (int, error) {
	done := 0
	for done < len(p) {
		n, err := unix.Pread(t.sys.fd, p[done:], off+int64(done))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return done, t.pathErr("read", fmt.Errorf("at offset %d: %w", off+int64(done), err))
		}
		if n == 0 {
			break
		}
		done += n
	}
	return done, nil
}

// prepare destroys what could boot: on a device the first and last MiB (the
// partition table and the backup GPT, from tailStart on), on a file all of it
// (truncate to zero, which also makes every later zero range a hole), or
// only its first MiB when the file is kept for a delta.
func (t *target) prepare() error {
	if !t.isDev {
		if t.keep {
			return t.zeroRange(0, headSize)
		}
		if err := unix.Ftruncate(t.sys.fd, 0); err != nil {
			return t.pathErr("truncate", err)
		}
		return nil
	}
	n := min(int64(headSize), t.size)
	if err := t.zeroRange(0, n); err != nil {
		return err
	}
	if last := t.tailStart(); last < t.size {
		return t.zeroRange(last, t.size-last)
	}
	return nil
}

// finishSize sets a file target's length to the image size.
func (t *target) finishSize(size int64) error {
	if t.isDev {
		return nil
	}
	if err := unix.Ftruncate(t.sys.fd, size); err != nil {
		return t.pathErr("truncate", err)
	}
	return nil
}

// sync flushes both descriptors to stable storage.
func (t *target) sync() error {
	if t.sys.buffered != nil {
		if err := unix.Fdatasync(int(t.sys.buffered.Fd())); err != nil {
			return t.pathErr("fdatasync", err)
		}
	}
	if err := unix.Fdatasync(t.sys.fd); err != nil {
		return t.pathErr("fdatasync", err)
	}
	return nil
}

// rereadPartitions asks the kernel to re-read the partition table (BLKRRPART) so
// the new partitions appear. EBUSY (a partition is open elsewhere) is returned for
// the caller to report as a warning; EINVAL means the device does not take
// partitions (a loop device without partscan) and is not an error.
func (t *target) rereadPartitions() error {
	if !t.isDev {
		return nil
	}
	err := ioctl(t.sys.fd, unix.BLKRRPART, 0)
	if err == nil || errors.Is(err, unix.EINVAL) {
		return nil
	}
	return &os.PathError{Op: "ioctl BLKRRPART", Path: t.path, Err: err}
}

// sameFile reports whether path names the target file itself.
func (t *target) sameFile(path string) bool {
	var st unix.Stat_t
	return !t.isDev && t.sys.ino != 0 && unix.Stat(path, &st) == nil && st.Dev == t.sys.dev && st.Ino == t.sys.ino
}

func (t *target) close() error {
	if t.sys.buffered != nil {
		t.sys.buffered.Close()
		t.sys.buffered = nil
	}
	if t.sys.fd < 0 {
		return nil
	}
	fd := t.sys.fd
	t.sys.fd = -1 // closed once: the number may be another file's by the next call
	return unix.Close(fd)
}

// hugePages asks for b, a range of whole huge pages, to be backed by them
// (alignedBuf). It is advice: where transparent huge pages are off, the
// kernel uses small pages as before.
func hugePages(b []byte) { _ = unix.Madvise(b, unix.MADV_HUGEPAGE) }
