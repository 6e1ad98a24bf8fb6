package flash

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"io"

	"bty/format"
)

const xzMagic = "\xfd7zXZ\x00"

// xz: bty's LZMA2 decoder (flash/lzma2) in an xz container reader
// (decode_xz_reader.go), ulikunitz/xz for what it does not read. Concatenated streams
// and stream padding are read as one image. The decoded size is the sum of the
// uncompressed sizes in each stream's index, read from the end of the source
// (its CRC32s checked; an index that does not check out leaves the decoding to
// the sequential reader, which reports where the stream is corrupt).
// Images of several blocks (xz -T0, pixz) are decoded a block per core
// (decode_xz_parallel.go).
var xzProber = prober{
	format: format.Xz,
	open: func(src opened) (decoder, error) {
		if blocks := xzParallelBlocks(src.ra, src.size); blocks != nil {
			return &xzParallelDecoder{in: src.in, blocks: blocks}, nil // decode_xz_parallel.go
		}
		return newReaderDecoder(src, newXzReader) // decode_xz_reader.go
	},
	size: func(_ context.Context, _ []byte, ra io.ReaderAt, srcSize int64) (int64, bool) {
		blocks, ok := xzIndex(ra, srcSize)
		if !ok {
			return -1, false
		}
		var total int64
		for _, b := range blocks {
			total += b.size
		}
		return total, true
	},
}

// xzBlock is one block of an xz file, located through the stream indexes.
type xzBlock struct {
	comp     int64    // offset of the block in the source
	unpadded int64    // the index's unpadded size
	out      int64    // offset of its output in the image
	size     int64    // uncompressed size
	header   [12]byte // the header of the stream it belongs to
}

// padded is the block's length in the source.
func (b xzBlock) padded() int64 { return (b.unpadded + 3) &^ 3 }

// xzIndex walks the streams backwards from the end of the source (stream
// padding, footer, index, blocks, header) and returns every block in file
// order; ok is false if anything does not add up.
func xzIndex(ra io.ReaderAt, srcSize int64) (blocks []xzBlock, ok bool) {
	if ra == nil || srcSize < 32 {
		return nil, false
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
	var streams [][]xzBlock
	for pos := srcSize; pos > 0; {
		// Stream padding: zero bytes in multiples of four.
		for {
			w := read(pos-4, 4)
			if w == nil {
				return nil, false
			}
			if !bytes.Equal(w, []byte{0, 0, 0, 0}) {
				break
			}
			pos -= 4
		}
		footer := read(pos-12, 12)
		if footer == nil || string(footer[10:12]) != "YZ" || crc32.ChecksumIEEE(footer[4:10]) != binary.LittleEndian.Uint32(footer) {
			return nil, false
		}
		indexLen := (int64(binary.LittleEndian.Uint32(footer[4:8])) + 1) * 4
		indexStart := pos - 12 - indexLen
		idx := read(indexStart, indexLen)
		if idx == nil || idx[0] != 0 || crc32.ChecksumIEEE(idx[:indexLen-4]) != binary.LittleEndian.Uint32(idx[indexLen-4:]) {
			return nil, false
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
		if !ok || records > indexLen {
			return nil, false
		}
		var stream []xzBlock
		var blocksLen int64
		for i := int64(0); i < records; i++ {
			unpadded, ok1 := next()
			size, ok2 := next()
			if !ok1 || !ok2 {
				return nil, false
			}
			b := xzBlock{unpadded: unpadded, size: size}
			stream = append(stream, b)
			blocksLen += b.padded()
		}
		start := indexStart - blocksLen - 12
		h := read(start, 12)
		if h == nil || checkXzStreamHeader(h) != nil || !bytes.Equal(h[6:8], footer[8:10]) {
			return nil, false
		}
		comp := start + 12
		for i := range stream {
			copy(stream[i].header[:], h)
			stream[i].comp = comp
			comp += stream[i].padded()
		}
		streams = append(streams, stream)
		pos = start
	}
	var out int64
	for i := len(streams) - 1; i >= 0; i-- {
		for _, b := range streams[i] {
			b.out = out
			out += b.size
			blocks = append(blocks, b)
		}
	}
	return blocks, true
}
