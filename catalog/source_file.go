package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// FileSource is an image in a local file (or a device node read as a file).
type FileSource struct{ Path string }

func (s FileSource) Name() string { return s.Path }

// Open opens the file at off; the size is the file's length at that moment.
func (s FileSource) Open(_ context.Context, off int64) (io.ReadCloser, int64, error) {
	f, err := os.Open(s.Path)
	if err != nil {
		return nil, -1, &sourceError{err: fileErr(s.Path, err), permanent: true}
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
// byte more, so it is read and hashed once.
func (s FileSource) Rereadable() bool {
	f, err := os.Open(s.Path)
	if err != nil {
		return false
	}
	defer f.Close()
	fi, err := f.Stat()
	return err == nil && fi.Mode().IsRegular() && hasHole(f, fi.Size())
}
