package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// StdinName is the display name of IMG "-".
const StdinName = "standard input"

// StdinSource is an image read once from standard input: a pipe such as
// `xz -dc x.img.xz | bty --image - ...` or `curl ... | bty --image - ...`. The
// format is sniffed from the stream like any other. It cannot be opened a
// second time, so a resumed download is impossible and not attempted (a read
// error ends the flash as a source error), and neither can a qcow2 image,
// whose tables are read at random offsets, be flashed from it. A pipe whose
// writer dies ends like a complete one: a compressed stream then fails as
// truncated, a raw one only against --sha256.
type StdinSource struct {
	R io.Reader // nil means os.Stdin

	mu     sync.Mutex
	opened bool
}

func (s *StdinSource) Name() string { return StdinName }

// Open returns standard input the first time, at offset 0; the size is unknown.
func (s *StdinSource) Open(_ context.Context, off int64) (io.ReadCloser, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opened || off != 0 {
		return nil, -1, &sourceError{err: errors.New("standard input can be read only once: a resumed download or a qcow2 image needs a file or a URL"), permanent: true}
	}
	s.opened = true
	r := s.R
	if r == nil {
		r = os.Stdin
	}
	return io.NopCloser(onceReader{r}), -1, nil
}

// onceReader marks read errors permanent: what was read cannot be read again.
type onceReader struct{ r io.Reader }

func (o onceReader) Read(p []byte) (int, error) {
	n, err := o.r.Read(p)
	if err != nil && err != io.EOF {
		err = &sourceError{err: fmt.Errorf("reading standard input: %w", err), permanent: true}
	}
	return n, err
}
