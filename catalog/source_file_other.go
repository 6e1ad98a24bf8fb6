//go:build !linux

package catalog

import (
	"io"
	"os"
)

func newSparseReader(f *os.File, off, _ int64) io.ReadCloser {
	f.Seek(off, io.SeekStart)
	return f
}
