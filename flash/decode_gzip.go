package flash

import (
	"context"
	"encoding/binary"
	"io"

	"github.com/klauspost/compress/gzip"

	"bty/format"
)

// gzip: klauspost's decoder, several times faster than the standard library's and
// than gzip -dc. Concatenated members (pigz, bgzip) are read as one stream.
var gzipProber = prober{
	format: format.Gzip,
	size:   gzipSize,
	open: func(src opened) (decoder, error) {
		return newReaderDecoder(src, func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) })
	},
}

// deflateMaxRatio is DEFLATE's largest expansion, 1032:1 (zlib's technical
// details, zlib.net/zlib_tech.html): a trailer that claims more than that many
// times the source's length is not a trailer (a truncated or padded file).
const deflateMaxRatio = 1032

// gzipSize reads the ISIZE trailer at the end of the source: the last member's
// decoded size modulo 4 GiB. Whatever the number of members (pigz writes one,
// bgzip and cat a.gz b.gz several) and however often the size wrapped, the
// image is at least that large; how much larger cannot be known without
// decoding, as gzip records neither the member count nor where members end. So
// it is a lower bound, enough to refuse a target that is surely too small.
func gzipSize(_ context.Context, _ []byte, ra io.ReaderAt, srcSize int64) (int64, bool) {
	const minMember = 20 // 10-byte header, an empty final block, 8-byte trailer
	if ra == nil || srcSize < minMember {
		return -1, false
	}
	var t [4]byte
	if n, _ := ra.ReadAt(t[:], srcSize-4); n < len(t) {
		return -1, false
	}
	isize := int64(binary.LittleEndian.Uint32(t[:]))
	if isize == 0 || isize > deflateMaxRatio*srcSize {
		return -1, false
	}
	return isize, false
}
