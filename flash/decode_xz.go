package flash

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"

	"github.com/ulikunitz/xz"
)

const xzMagic = "\xfd7zXZ\x00"

// xz: ulikunitz's pure-Go decoder (the design card's choice). Concatenated streams
// and stream padding are read as one image. The decoded size is the sum of the
// uncompressed sizes in each stream's index, read from the end of the source.
var xzProber = prober{
	format:   Xz,
	match:    func(h []byte) bool { return hasPrefix(h, xzMagic) },
	suffixes: []string{".xz"},
	// The dictionary is sized by each block's header (8 MiB for xz -6, 64
	// MiB for -9): ReaderConfig.DictCap is a minimum that is allocated up
	// front, so it stays at the default.
	decode: func(r io.Reader) (io.Reader, error) { return xz.NewReader(r) },
	size: xzSize,
}

// xzSize walks the streams backwards from the end of the source: stream padding,
// footer, index, blocks, header. It returns -1 if anything does not add up.
func xzSize(_ context.Context, _ []byte, ra io.ReaderAt, srcSize int64) int64 {
	if ra == nil || srcSize < 32 {
		return -1
	}
	read := func(off, n int64) []byte {
		if off < 0 || n <= 0 || n > 16<<20 {
			return nil
		}
		b := make([]byte, n)
		if _, err := ra.ReadAt(b, off); err != nil && err != io.EOF {
			return nil
		}
		return b
	}
	var total int64
	pos := srcSize
	for pos > 0 {
		// Stream padding: zero bytes in multiples of four.
		for {
			w := read(pos-4, 4)
			if w == nil {
				return -1
			}
			if !bytes.Equal(w, []byte{0, 0, 0, 0}) {
				break
			}
			pos -= 4
		}
		footer := read(pos-12, 12)
		if footer == nil || string(footer[10:12]) != "YZ" {
			return -1
		}
		indexLen := (int64(binary.LittleEndian.Uint32(footer[4:8])) + 1) * 4
		indexStart := pos - 12 - indexLen
		idx := read(indexStart, indexLen)
		if idx == nil || idx[0] != 0 {
			return -1
		}
		idx = idx[1:]
		next := func() (int64, bool) {
			v, n := binary.Uvarint(idx)
			if n <= 0 || v > 1<<62 {
				return 0, false
			}
			idx = idx[n:]
			return int64(v), true
		}
		records, ok := next()
		if !ok {
			return -1
		}
		var blocks int64
		for i := int64(0); i < records; i++ {
			unpadded, ok1 := next()
			uncompressed, ok2 := next()
			if !ok1 || !ok2 {
				return -1
			}
			blocks += (unpadded + 3) &^ 3
			total += uncompressed
		}
		start := indexStart - blocks - 12
		if h := read(start, 6); h == nil || string(h) != xzMagic {
			return -1
		}
		pos = start
	}
	return total
}
