package catalog

import (
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// sparseReader reads a file from an offset on, filling its holes with zeros
// without reading them: lseek(SEEK_DATA/SEEK_HOLE) finds where data is. A raw
// disk image is mostly holes, so this saves the kernel zero-filling and copying
// gigabytes that are known to be zero (bmaptool gets the same from a bmap file).
// File systems without hole support report one data region, and the reader
// then reads everything.
type sparseReader struct {
	f      *os.File
	off    int64
	size   int64
	end    int64 // end of the region that off is in
	inHole bool
}

func newSparseReader(f *os.File, off, size int64) io.ReadCloser {
	return &sparseReader{f: f, off: off, size: size, end: off}
}

func (r *sparseReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	if r.off >= r.end {
		r.locate()
	}
	n := int(min(int64(len(p)), r.end-r.off))
	if r.inHole {
		clear(p[:n])
	} else {
		var err error
		if n, err = r.f.ReadAt(p[:n], r.off); n == 0 && err != nil {
			return 0, err
		}
	}
	r.off += int64(n)
	return n, nil
}

// locate finds the data or hole region that starts at r.off.
func (r *sparseReader) locate() {
	fd := int(r.f.Fd())
	data, err := unix.Seek(fd, r.off, unix.SEEK_DATA)
	switch {
	case errors.Is(err, unix.ENXIO): // no data after off: a hole to the end
		r.inHole, r.end = true, r.size
	case err != nil: // no SEEK_DATA: read it all
		r.inHole, r.end = false, r.size
	case data > r.off:
		r.inHole, r.end = true, min(data, r.size)
	default:
		hole, err := unix.Seek(fd, r.off, unix.SEEK_HOLE)
		if err != nil || hole <= r.off {
			hole = r.size
		}
		r.inHole, r.end = false, min(hole, r.size)
	}
}

func (r *sparseReader) Close() error { return r.f.Close() }

// SkipHole moves past the hole at the current offset, if any, and returns its
// length.
func (r *sparseReader) SkipHole() int64 {
	if r.off >= r.size {
		return 0
	}
	if r.off >= r.end {
		r.locate()
	}
	if !r.inHole {
		return 0
	}
	n := r.end - r.off
	r.off = r.end
	return n
}

// hasHole reports whether the file of the given size has a hole anywhere.
func hasHole(f *os.File, size int64) bool {
	hole, err := unix.Seek(int(f.Fd()), 0, unix.SEEK_HOLE)
	return err == nil && hole < size
}
