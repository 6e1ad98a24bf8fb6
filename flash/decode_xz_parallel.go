package flash

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"

	"github.com/ulikunitz/xz"

	"bty/flash/lzma2"
)

// xz blocks are independent: xz -T0 and pixz cut an image into blocks of a few
// MiB so they can be decoded on several cores, which is how bty gets the pure-Go
// decoder closer to xz's speed. The source is still read once, from start to end
// (it is hashed on the way); each block's bytes go to a worker that decodes them
// as a stream of its own (the stream header, the block, a one-record index and a
// footer) and delivers the output at the block's offset in the image.

// maxParallelBlock bounds the compressed size of a block decoded in parallel:
// the workers, the queue and the reader each hold one, and memory must stay
// flat.
const maxParallelBlock = 16 << 20

// xzParallelBlocks returns the blocks of a source worth decoding in parallel
// (on two cores or more, at least two blocks, none too large), or nil.
func xzParallelBlocks(ra io.ReaderAt, srcSize int64) []xzBlock {
	if !multiCore() {
		return nil
	}
	blocks, ok := xzIndex(ra, srcSize)
	if !ok || len(blocks) < 2 {
		return nil
	}
	for _, b := range blocks {
		if b.padded() > maxParallelBlock {
			return nil
		}
	}
	return blocks
}

type xzJob struct {
	b   xzBlock
	buf []byte
}

// xzParallelDecoder decodes the blocks of a multi-block xz source on every
// core.
type xzParallelDecoder struct {
	in     *input
	blocks []xzBlock
}

// head decodes the start of the first block for the tar check, from the first
// bytes of the source (64 KiB at most: a tar header compresses to far less).
// A first block that does not decode that far only shortens the head; the
// workers report what is wrong with it.
func (d *xzParallelDecoder) head() ([]byte, error) {
	first := d.blocks[0]
	b, _ := d.in.peek(int(min(first.comp+first.padded(), 64<<10)))
	r, err := newXzReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	head := make([]byte, sniffLen)
	n, _ := io.ReadFull(r, head)
	return head[:n], nil
}

func (d *xzParallelDecoder) stream(ctx context.Context, sink blockSink) error {
	return xzParallel(ctx, bufio.NewReaderSize(d.in, 64<<10), d.blocks, sink)
}

// xzParallel reads the source r sequentially and decodes its blocks on
// GOMAXPROCS workers into sink, each block at its offset as it is decoded.
func xzParallel(ctx context.Context, r io.Reader, blocks []xzBlock, sink blockSink) error {
	workers := runtime.GOMAXPROCS(0)
	// The buffers of the compressed blocks: one per worker, one queued, one
	// being read.
	free := make(chan []byte, workers+2)
	for range workers + 2 {
		free <- nil
	}
	read := func(ctx context.Context, send func(xzJob) error) error {
		var pos int64
		for _, b := range blocks {
			if _, err := io.CopyN(io.Discard, r, b.comp-pos); err != nil {
				return err
			}
			var buf []byte
			select {
			case buf = <-free:
			case <-ctx.Done():
				return ctx.Err()
			}
			// The block is read between room for the stream header
			// before it and the index and footer after it (xzStreamOf).
			if n := xzHeadRoom + b.padded() + xzTailRoom; int64(cap(buf)) < n {
				buf = make([]byte, n)
			}
			buf = buf[:xzHeadRoom+b.padded()]
			if _, err := io.ReadFull(r, buf[xzHeadRoom:]); err != nil {
				return err
			}
			pos = b.comp + b.padded()
			if err := send(xzJob{b, buf}); err != nil {
				return err
			}
		}
		return nil
	}
	return ordered(ctx, workers, read, func() (func(xzJob, turn) error, func()) {
		var d xzBlockDecoder
		return func(j xzJob, _ turn) error {
			if err := d.decode(j, sink.Data); err != nil {
				return err
			}
			free <- j.buf
			return nil
		}, nil
	})
}

// xzBlockDecoder is a worker's decoder, kept from block to block.
type xzBlockDecoder struct {
	lz  lzma2.Reader
	in  bytes.Reader
	out []byte // for blocks ulikunitz decodes
}

// decode decodes one block and delivers its output: with bty's LZMA2 decoder
// straight from its window, or through ulikunitz for other filters and
// unknown checks.
func (d *xzBlockDecoder) decode(j xzJob, deliver func(off int64, p []byte) error) error {
	blk := j.buf[xzHeadRoom:]
	corrupt := func(at int64, format string, a ...any) error {
		return fmt.Errorf("%w: xz: block at byte %d: %s, at byte %d", ErrCorrupt, j.b.comp, fmt.Sprintf(format, a...), at)
	}
	h, err := parseXzBlockHeader(blk)
	if err != nil {
		return corrupt(j.b.comp, "%v", err)
	}
	check, clen, known := xzCheckOf(j.b.header[:])
	if !h.lzma2 || !known {
		if d.out == nil {
			d.out = make([]byte, blockSize)
		}
		return decodeXzBlock(j, d.out, deliver)
	}
	// The block: header, compressed data, padding to a multiple of four,
	// check.
	end := j.b.unpadded - int64(clen) // end of the compressed data in blk
	sum := j.b.padded() - int64(clen) // start of the check
	if end < int64(h.n) || j.b.padded() > int64(len(blk)) {
		return corrupt(j.b.comp, "the index's size %d does not fit the block", j.b.unpadded)
	}
	if h.comp >= 0 && h.comp != end-int64(h.n) {
		return corrupt(j.b.comp, "block header says %d compressed bytes, the index %d", h.comp, end-int64(h.n))
	}
	if h.size >= 0 && h.size != j.b.size {
		return corrupt(j.b.comp, "block header says %d bytes, the index %d", h.size, j.b.size)
	}
	d.in.Reset(blk[h.n:end])
	if err := d.lz.Reset(&d.in, int(max(1, min(h.dict, j.b.size)))); err != nil {
		return corrupt(j.b.comp, "%v", err)
	}
	d.lz.SetInputOffset(j.b.comp + int64(h.n))
	off, left := j.b.out, j.b.size
	_, err = d.lz.WriteTo(writerFunc(func(p []byte) (int, error) {
		if int64(len(p)) > left {
			return 0, corrupt(j.b.comp+end, "block decodes to more than the %d bytes its index says", j.b.size)
		}
		if check != nil {
			check.Write(p)
		}
		if err := deliver(off, p); err != nil {
			return 0, err
		}
		off, left = off+int64(len(p)), left-int64(len(p))
		return len(p), nil
	}))
	switch {
	case errors.Is(err, lzma2.ErrCorrupt):
		return fmt.Errorf("%w: xz block at byte %d: %w", ErrCorrupt, j.b.comp, err)
	case err != nil:
		return err
	case left != 0:
		return corrupt(j.b.comp+end, "block decodes to %d bytes, its index says %d", j.b.size-left, j.b.size)
	case d.in.Len() != 0:
		return corrupt(j.b.comp+end-int64(d.in.Len()), "LZMA2 data ends %d bytes before the block's check", d.in.Len())
	case !bytes.Equal(blk[end:sum], make([]byte, sum-end)):
		return corrupt(j.b.comp+end, "block padding is not zero")
	case !bytes.Equal(blk[sum:j.b.padded()], xzSum(check)):
		return corrupt(j.b.comp+sum, "block check mismatch (the data is corrupt)")
	}
	return nil
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// decodeXzBlock decodes one block with ulikunitz, through buffer out, and
// delivers its output.
func decodeXzBlock(j xzJob, out []byte, deliver func(off int64, p []byte) error) error {
	d, err := xz.NewReader(xzStreamOf(j.b, j.buf))
	if err != nil {
		return fmt.Errorf("xz block at byte %d: %w", j.b.comp, err)
	}
	off, left := j.b.out, j.b.size
	for {
		n, err := fill(d, out)
		if int64(n) > left {
			return fmt.Errorf("xz block at byte %d decodes to more than the %d bytes its index says", j.b.comp, j.b.size)
		}
		if n > 0 {
			if err := deliver(off, out[:n]); err != nil {
				return err
			}
			off, left = off+int64(n), left-int64(n)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("xz block at byte %d: %w", j.b.comp, err)
		}
	}
	if left != 0 {
		return fmt.Errorf("xz block at byte %d decodes to %d bytes, its index says %d", j.b.comp, j.b.size-left, j.b.size)
	}
	return nil
}

// Room around a block in its buffer for the stream xzStreamOf makes of it.
const (
	xzHeadRoom = 12 // stream header
	xzTailRoom = 64 // index of one record (at most 2+2*9+3+4 bytes) and footer
)

// xzStreamOf wraps one block in a stream of its own: the original stream
// header, the block, an index of one record, and a footer. buf holds the block
// at buf[xzHeadRoom:], with xzTailRoom bytes of capacity after it; the stream is
// built around it in place, so the decoder reads one contiguous buffer (it
// reads a byte at a time, and every reader layer costs).
func xzStreamOf(b xzBlock, buf []byte) io.Reader {
	le := binary.LittleEndian
	copy(buf, b.header[:])
	index := len(buf)
	buf = append(buf, 0)
	buf = binary.AppendUvarint(buf, 1)
	buf = binary.AppendUvarint(buf, uint64(b.unpadded))
	buf = binary.AppendUvarint(buf, uint64(b.size))
	for (len(buf)-index)%4 != 0 {
		buf = append(buf, 0)
	}
	buf = le.AppendUint32(buf, crc32.ChecksumIEEE(buf[index:]))
	backward := uint32((len(buf)-index)/4 - 1)
	footer := make([]byte, 12)
	le.PutUint32(footer[4:8], backward)
	copy(footer[8:10], b.header[6:8]) // stream flags
	le.PutUint32(footer[0:4], crc32.ChecksumIEEE(footer[4:10]))
	copy(footer[10:], "YZ")
	return bytes.NewReader(append(buf, footer...))
}
