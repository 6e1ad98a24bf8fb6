package flash

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"sync"

	"bty/flash/lzma2"
	"github.com/ulikunitz/xz"
	"golang.org/x/sync/errgroup"
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

// xzParallelBlocks returns the blocks of a source worth decoding in parallel,
// or nil.
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

// multiCore reports whether blocks are worth decoding on several cores.
func multiCore() bool { return runtime.GOMAXPROCS(0) >= 2 }

type xzJob struct {
	b   xzBlock
	buf []byte
}

// xzParallel reads the source r sequentially and decodes its blocks on
// GOMAXPROCS workers into sink.
func xzParallel(ctx context.Context, r io.Reader, blocks []xzBlock, sink imageSink) error {
	workers := runtime.GOMAXPROCS(0)
	g, ctx := errgroup.WithContext(ctx)
	jobs := make(chan xzJob, 1)
	free := make(chan []byte, workers+2)
	for range workers + 2 {
		free <- nil
	}
	g.Go(func() error {
		defer close(jobs)
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
			select {
			case jobs <- xzJob{b, buf}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	var mu sync.Mutex
	for range workers {
		g.Go(func() error {
			var d xzBlockDecoder
			for j := range jobs {
				if err := d.decode(j, func(off int64, p []byte) error {
					mu.Lock()
					defer mu.Unlock()
					return sink.Data(off, p)
				}); err != nil {
					return err
				}
				free <- j.buf
			}
			return nil
		})
	}
	return g.Wait()
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
