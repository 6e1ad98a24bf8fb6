package flash

import (
	"bufio"
	"bytes"
	"context"
	"io"

	"bty/format"
)

// A prober is one format's link in the chain that Flash and Inspect walk: the
// source's first bytes name the format (bty/format decides from the magic),
// and its prober tells how large the decoded image is, where the container
// records it, and opens the decoder. One decode_*.go file per format declares
// its prober, and decides there how its decoder uses the cores.
type prober struct {
	format format.Format
	// size returns the decoded size read from the container, or -1; exact is
	// false when n is only a lower bound. ra reads the source at random
	// offsets; srcSize is the source size (-1 unknown).
	size func(ctx context.Context, head []byte, ra io.ReaderAt, srcSize int64) (n int64, exact bool)
	// open returns the decoder of a source in this format.
	open func(src opened) (decoder, error)
}

// opened is a source as a decoder reads it.
type opened struct {
	in   *input      // from its start to its end, once, hashed on the way
	ra   io.ReaderAt // at random offsets (the xz index, qcow2's tables), not hashed
	size int64       // the source size, -1 when unknown
}

// decoder turns the bytes of a source into the image.
type decoder interface {
	// head returns the start of the decoded image, sniffLen bytes (fewer
	// for a shorter image, none when the format cannot have a tar archive
	// inside), for the tar check before the target is opened.
	head() ([]byte, error)
	// stream delivers the whole image to sink. It reads the source no
	// further than the image needs; Flash reads the rest, for the length
	// and digest checks at its end.
	stream(ctx context.Context, sink blockSink) error
}

// probers in the order the magic bytes are tried; raw has none and comes last.
var probers = []prober{gzipProber, xzProber, zstdProber, bzip2Prober, qcow2Prober, rawProber}

// sniffLen is how many leading bytes the probers and the tar check need.
const sniffLen = 512

func probeOf(head []byte) prober {
	f := format.Sniff(head)
	for _, p := range probers {
		if p.format == f {
			return p
		}
	}
	return rawProber
}

// isTar reports whether decoded bytes start a tar archive (POSIX or GNU magic at
// offset 257).
func isTar(head []byte) bool {
	return len(head) >= 263 && bytes.Equal(head[257:262], []byte("ustar"))
}

func hasPrefix(head []byte, magic string) bool { return bytes.HasPrefix(head, []byte(magic)) }

// readerDecoder is the decoder of a format read as one stream (gzip, zstd, and
// xz or bzip2 where the blocks are not decoded in parallel): r is the decoded
// image, buffered for the tar check's peek, and the sink reads it into its
// blocks.
type readerDecoder struct{ r *bufio.Reader }

// newReaderDecoder wraps the source in the decoding reader that newReader makes.
func newReaderDecoder(src opened, newReader func(io.Reader) (io.Reader, error)) (decoder, error) {
	r, err := newReader(bufio.NewReaderSize(src.in, 64<<10))
	if err != nil {
		return nil, err
	}
	return readerDecoder{bufio.NewReaderSize(r, 64<<10)}, nil
}

func (d readerDecoder) head() ([]byte, error) {
	h, err := d.r.Peek(sniffLen)
	if err == io.EOF {
		err = nil
	}
	return h, err
}

func (d readerDecoder) stream(_ context.Context, sink blockSink) error {
	_, err := sink.ReadFrom(d.r)
	return err
}
