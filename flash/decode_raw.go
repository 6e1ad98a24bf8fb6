package flash

import (
	"context"
	"io"

	"bty/format"
)

// raw: the source is the image. Its size is the source's, and it is handed to
// the sink as it comes, without a copy into pool blocks: the prefetcher's
// buffers go to Take and are written from where they were read, and a hole
// of a sparse source goes to Zero without being read, copied or scanned.
var rawProber = prober{
	format: format.Raw,
	size: func(_ context.Context, _ []byte, _ io.ReaderAt, srcSize int64) (int64, bool) {
		return srcSize, srcSize >= 0
	},
	open: func(src opened) (decoder, error) { return rawDecoder{src.in, src.size}, nil },
}

type rawDecoder struct {
	in   *input
	size int64 // announced by the source, -1 unknown
}

func (d rawDecoder) head() ([]byte, error) {
	h, err := d.in.peek(sniffLen)
	if err == io.EOF {
		err = nil
	}
	return h, err
}

// stream returns once the size the source announced (if known) is delivered,
// so that the target's flush starts while the end-of-source checks (the
// scout's digest of a final hole) still run; a source that goes on past it
// fails those checks.
func (d rawDecoder) stream(ctx context.Context, sink blockSink) error {
	for off := int64(0); d.size < 0 || off < d.size; {
		data, zeros, release, err := d.in.take()
		switch {
		case err == io.EOF:
			return nil
		case err != nil:
			return err
		case zeros > 0:
			err = sink.Zero(off, zeros)
			off += zeros
		default:
			err = sink.Take(off, data, release)
			off += int64(len(data))
		}
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}
