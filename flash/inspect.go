package flash

import (
	"context"
	"errors"
	"fmt"
	"io"

	"bty/category"
	"bty/format"
)

// Info is what is known of a source before anything is written: the format
// and how large the decoded image is.
type Info struct {
	Format     format.Format // from the magic bytes
	FormatHint format.Format // from the name or catalog, "" when none
	SourceSize int64         // length of the source bytes, -1 when unknown
	// ImageSize is the decoded size when Exact, else a lower bound of it
	// (gzip's trailer, a pzstd stream's first frame); -1 when nothing is known
	// (bzip2, a stream of unknown length).
	ImageSize int64
	Exact     bool
}

// Inspect tells what Flash would find before it writes: the format from the
// source's first bytes and the decoded size where the container records it
// (raw size, qcow2 virtual size, xz index, zstd frame header, gzip trailer).
// It opens the source once more for each of these reads, so a source that
// can be read only once (standard input) is no use to Flash afterwards. Of opt
// only FormatHint counts.
func Inspect(ctx context.Context, src Source, opt Options) (Info, error) {
	rc, size, err := src.Open(ctx, 0)
	if err != nil {
		if ctx.Err() != nil {
			return Info{}, ctx.Err()
		}
		return Info{}, &IOError{Side: SideSource, Err: err}
	}
	head := make([]byte, sniffLen)
	n, err := io.ReadFull(rc, head)
	rc.Close()
	if err != nil && err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) {
		return Info{}, &IOError{Side: SideSource, Err: err}
	}
	if n == 0 {
		return Info{}, errEmpty(src)
	}
	_, info := inspect(ctx, src, head[:n], size, opt.FormatHint)
	return info, nil
}

// inspect decides the format from the source's first bytes and reads the
// decoded size where the container records it. Flash and Inspect share it.
func inspect(ctx context.Context, src Source, head []byte, srcSize int64, hint string) (prober, Info) {
	p := probeOf(head)
	n, exact := p.size(ctx, head, sourceReaderAt{ctx: ctx, src: src}, srcSize)
	return p, Info{Format: p.format, FormatHint: hintOf(hint, src.Name()), SourceSize: srcSize, ImageSize: n, Exact: exact}
}

// sizeText is the decoded size for a message.
func (i Info) sizeText() string {
	if i.Exact {
		return fmt.Sprintf("the image is %d bytes", i.ImageSize)
	}
	return fmt.Sprintf("the %s image decodes to at least %d bytes", i.Format, i.ImageSize)
}

func errEmpty(src Source) error {
	return fmt.Errorf("%w: %s is empty", category.ErrIntegrity, src.Name())
}
