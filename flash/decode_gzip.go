package flash

import (
	"io"

	"github.com/klauspost/compress/gzip"
)

// gzip: klauspost's decoder, several times faster than the standard library's and
// than gzip -dc. Concatenated members (pigz, bgzip) are read as one stream. The
// ISIZE trailer is the size modulo 4 GiB, so the decoded size is not taken from it.
var gzipProber = prober{
	format:   Gzip,
	match:    func(h []byte) bool { return hasPrefix(h, "\x1f\x8b") },
	suffixes: []string{".gz", ".gzip", ".img.gz"},
	decode:   func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) },
	size:     unknownSize,
}
