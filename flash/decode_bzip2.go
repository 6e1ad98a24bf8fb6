package flash

import (
	"context"
	"io"

	"github.com/dsnet/compress/bzip2"

	"bty/format"
)

// bzip2: dsnet's decoder, faster than the standard library's and bzip2 -dc.
// Concatenated streams (pbzip2, lbzip2) are read as one. With two cores or more
// the blocks are decoded in parallel (decode_bzip2_parallel.go); on one, the
// stream is decoded as it comes. The container does not record the decoded
// size.
var bzip2Prober = prober{
	format: format.Bzip2,
	size:   unknownSize,
	open: func(src opened) (decoder, error) {
		if multiCore() {
			return newBzDecoder(src), nil
		}
		return newReaderDecoder(src, func(r io.Reader) (io.Reader, error) { return bzip2.NewReader(r, nil) })
	},
}

// isBzHeader reports whether h starts with a bzip2 stream header: "BZh" and
// the block size level, bzip2's magic.
func isBzHeader(h []byte) bool { return format.Magic(h) == format.Bzip2 }

// unknownSize is the size of a container that does not record it (bzip2).
func unknownSize(context.Context, []byte, io.ReaderAt, int64) (int64, bool) { return -1, false }
