package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// FileSource is an image in a local file (or a device node read as a file),
// made by NewFileSource. Besides flash.Source it is a flash.Rereadable, its
// readers of a regular file are flash.HoleSkippers, and its errors are
// flash.PermanentErrors where retrying cannot help (flash_test.go checks
// all three).
type FileSource struct {
	path   string
	sparse bool // a regular file with holes, when it was made
}

// NewFileSource makes the source of the file at path. Whether the file has
// holes is decided here, once (see Rereadable); a file that cannot be opened
// yet has none, and Open reports why.
func NewFileSource(path string) FileSource {
	s := FileSource{path: path}
	if f, err := os.Open(path); err == nil {
		fi, err := f.Stat()
		s.sparse = err == nil && fi.Mode().IsRegular() && hasHole(f, fi.Size())
		f.Close()
	}
	return s
}

// Name is the file's path.
func (s FileSource) Name() string { return s.path }

// Open opens the file at off; the size is the file's length at that moment.
func (s FileSource) Open(_ context.Context, off int64) (io.ReadCloser, int64, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return nil, -1, &sourceError{err: fileErr(s.path, err), permanent: true}
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, -1, &sourceError{err: err}
	}
	if fi.Mode().IsRegular() {
		return newSparseReader(f, off, fi.Size()), fi.Size(), nil
	}
	// A device or pipe: its size is where seeking to the end lands.
	size, err := f.Seek(0, io.SeekEnd)
	if err == nil {
		_, err = f.Seek(off, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, -1, &sourceError{err: err}
	}
	return f, size, nil
}

func fileErr(path string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w: check the path", path, ErrNotFound)
	}
	return err
}

// Rereadable reports whether the flash engine should read the source twice
// (see flash.Rereadable): a regular file with holes, a sparse raw image, whose
// holes the scout hashes ahead. A file without holes, as any compressed or
// qcow2 image is, gains nothing from a second read and costs a copy of every
// byte more, so it is read and hashed once. It was decided by NewFileSource.
func (s FileSource) Rereadable() bool { return s.sparse }
