package flash

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"unsafe"

	"bty/flash/lzma2"
	"github.com/ulikunitz/xz"
)

// The xz container around bty's LZMA2 decoder (flash/lzma2). ulikunitz/xz
// keeps its container to itself (block headers, index and checks are
// unexported), so bty reads the container here and checks everything
// ulikunitz checks: the CRC32s of the stream header, block headers, index and
// footer, each block's sizes against its header and the index, its padding,
// and its check (CRC32, CRC64 or SHA-256). A stream whose first block is not
// LZMA2 alone, or whose check type bty does not know, goes to ulikunitz as a
// whole (ulikunitz v0.5 reads LZMA2 alone too, so nothing that decoded before
// stops decoding).

var crc64Table = crc64.MakeTable(crc64.ECMA)

// xzBlockHeader is a parsed block header.
type xzBlockHeader struct {
	n     int   // its length in bytes
	comp  int64 // the compressed size it states, or -1
	size  int64 // the uncompressed size it states, or -1
	dict  int64 // the LZMA2 dictionary size
	lzma2 bool  // LZMA2 is the only filter
}

// parseXzBlockHeader parses the block header at the start of b.
func parseXzBlockHeader(b []byte) (xzBlockHeader, error) {
	h := xzBlockHeader{comp: -1, size: -1}
	if len(b) == 0 {
		return h, fmt.Errorf("block header truncated")
	}
	h.n = (int(b[0]) + 1) * 4
	if b[0] == 0 {
		return h, fmt.Errorf("not a block header")
	}
	if len(b) < h.n {
		return h, fmt.Errorf("block header truncated")
	}
	if crc32.ChecksumIEEE(b[:h.n-4]) != binary.LittleEndian.Uint32(b[h.n-4:]) {
		return h, fmt.Errorf("block header CRC32 mismatch")
	}
	flags := b[1]
	p := b[2 : h.n-4]
	next := func() (int64, bool) {
		v, k := binary.Uvarint(p)
		if k <= 0 || v > 1<<62 {
			return 0, false
		}
		p = p[k:]
		return int64(v), true
	}
	var ok bool
	if flags&0x40 != 0 {
		if h.comp, ok = next(); !ok || h.comp == 0 {
			return h, fmt.Errorf("invalid compressed size in block header")
		}
	}
	if flags&0x80 != 0 {
		if h.size, ok = next(); !ok {
			return h, fmt.Errorf("invalid uncompressed size in block header")
		}
	}
	id, ok1 := next()
	n, ok2 := next()
	if flags&0x3f != 0 || !ok1 || !ok2 || id != 0x21 || n != 1 || len(p) < 1 {
		return h, nil // reserved flags, several filters, or not LZMA2
	}
	d := p[0]
	if d > 40 {
		return h, fmt.Errorf("invalid LZMA2 dictionary size %#02x in block header", d)
	}
	h.dict = 1<<32 - 1
	if d < 40 {
		h.dict = int64(2|d&1) << (d/2 + 11)
	}
	for _, c := range p[1:] {
		if c != 0 {
			return h, fmt.Errorf("block header padding is not zero")
		}
	}
	h.lzma2 = true
	return h, nil
}

// xzCheckOf returns a stream's check (nil for none) and its length, from the
// stream header; ok is false for a check type bty does not know.
func xzCheckOf(header []byte) (h hash.Hash, n int, ok bool) {
	switch header[7] {
	case 0:
		return nil, 0, true
	case 1:
		return crc32.NewIEEE(), 4, true
	case 4:
		return crc64.New(crc64Table), 8, true
	case 10:
		return sha256.New(), 32, true
	}
	return nil, 0, false
}

// xzSum is a check's value as xz stores it (CRC32 and CRC64 little-endian).
func xzSum(h hash.Hash) []byte {
	switch h := h.(type) {
	case nil:
		return nil
	case hash.Hash32:
		return binary.LittleEndian.AppendUint32(nil, h.Sum32())
	case hash.Hash64:
		return binary.LittleEndian.AppendUint64(nil, h.Sum64())
	}
	return h.Sum(nil)
}

// checkXzStreamHeader checks the magic, the flags and their CRC32.
func checkXzStreamHeader(h []byte) error {
	if len(h) < 12 || string(h[:6]) != xzMagic {
		return fmt.Errorf("not an xz stream header")
	}
	if h[6] != 0 || h[7]&0xf0 != 0 || crc32.ChecksumIEEE(h[6:8]) != binary.LittleEndian.Uint32(h[8:12]) {
		return fmt.Errorf("corrupt xz stream header")
	}
	return nil
}

// newXzReader decodes the xz streams in r with bty's LZMA2 decoder, or with
// ulikunitz's if the first block is anything but LZMA2 alone.
func newXzReader(r io.Reader) (io.Reader, error) {
	x := &xzReader{cr: countReader{r: r}}
	x.br = bufio.NewReaderSize(&x.cr, 64<<10)
	head, _ := x.br.Peek(12 + 1024)
	if checkXzStreamHeader(head) == nil {
		_, _, known := xzCheckOf(head)
		h, err := parseXzBlockHeader(head[12:])
		if !known || err == nil && !h.lzma2 {
			return xz.NewReader(x.br)
		}
	}
	return x, nil // which reports a corrupt header with its offset
}

// xzReader reads concatenated xz streams, block by block.
type xzReader struct {
	cr  countReader
	br  *bufio.Reader
	lz  *lzma2.Reader
	err error

	streams int      // streams begun
	header  []byte   // the current stream's header
	records []xzSize // the blocks of the current stream so far

	// The block being decoded (lz is set), and its check, computed a
	// buffer behind the decoder.
	inBlock bool
	blk     xzBlockHeader
	at      int64 // offset of the block header
	data    int64 // offset of its compressed data
	out     int64 // bytes it decoded to so far
	check   hash.Hash
	behind  checkBehind
}

// xzSize is an index record.
type xzSize struct{ unpadded, size int64 }

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// offset is the source offset of the next byte br returns.
func (x *xzReader) offset() int64 { return x.cr.n - int64(x.br.Buffered()) }

func (x *xzReader) corrupt(at int64, format string, a ...any) error {
	return fmt.Errorf("%w: xz: %s, at byte %d", ErrCorrupt, fmt.Sprintf(format, a...), at)
}

func (x *xzReader) Read(p []byte) (int, error) {
	for x.err == nil {
		if !x.inBlock {
			x.err = x.next()
			continue
		}
		x.behind.wait(p)
		n, err := x.lz.Read(p)
		x.out += int64(n)
		x.behind.add(x.check, p[:n])
		if x.blk.size >= 0 && x.out > x.blk.size {
			x.err = x.corrupt(x.at, "block decodes to more than the %d bytes its header says", x.blk.size)
			return n, x.err
		}
		switch {
		case err == io.EOF:
			x.err = x.endBlock()
		case err != nil:
			x.err = fmt.Errorf("%w: xz block at byte %d: %w", ErrCorrupt, x.at, err)
		}
		if n > 0 {
			return n, nil
		}
	}
	return 0, x.err
}

// next reads up to the next block header and starts the block, or returns
// io.EOF after the last stream.
func (x *xzReader) next() error {
	if x.header == nil {
		if err := x.streamHeader(); err != nil {
			return err
		}
	}
	at := x.offset()
	b, err := x.br.Peek(1)
	if err != nil {
		return x.corrupt(at, "stream truncated before its index")
	}
	if b[0] == 0 {
		return x.index()
	}
	b, _ = x.br.Peek((int(b[0]) + 1) * 4)
	h, err := parseXzBlockHeader(b)
	if err != nil {
		return x.corrupt(at, "%v", err)
	}
	if !h.lzma2 {
		return fmt.Errorf("%w: xz block at byte %d has filters other than LZMA2 alone (BCJ, delta...), which bty does not decode", ErrUnsupported, at)
	}
	x.br.Discard(h.n)
	window := h.dict
	if h.size >= 0 {
		window = max(1, min(window, h.size)) // no match reaches further back
	}
	if x.lz == nil {
		x.lz = new(lzma2.Reader)
	}
	if err := x.lz.Reset(x.br, int(window)); err != nil {
		return x.corrupt(at, "%v", err)
	}
	x.data = x.offset()
	x.lz.SetInputOffset(x.data)
	x.blk, x.at, x.out, x.inBlock = h, at, 0, true
	x.check, _, _ = xzCheckOf(x.header)
	return nil
}

// streamHeader reads a stream header, after any stream padding; io.EOF at a
// clean end after a stream.
func (x *xzReader) streamHeader() error {
	for x.streams > 0 {
		b, err := x.br.Peek(4)
		if len(b) == 0 && err == io.EOF {
			return io.EOF
		}
		if len(b) < 4 || !bytes.Equal(b, []byte{0, 0, 0, 0}) {
			break
		}
		x.br.Discard(4)
	}
	at := x.offset()
	b, _ := x.br.Peek(12)
	if err := checkXzStreamHeader(b); err != nil {
		if x.streams > 0 {
			return x.corrupt(at, "data after the last stream")
		}
		return x.corrupt(at, "%v", err)
	}
	if _, _, ok := xzCheckOf(b); !ok {
		return fmt.Errorf("%w: xz stream at byte %d has check type %d, which bty does not know", ErrUnsupported, at, b[7])
	}
	x.header = append(x.header[:0], b...)
	x.br.Discard(12)
	x.streams++
	x.records = x.records[:0]
	return nil
}

// endBlock checks a block's sizes, padding and check after its LZMA2 data.
func (x *xzReader) endBlock() error {
	x.inBlock = false
	comp := x.lz.InputOffset() - x.data
	if x.blk.comp >= 0 && comp != x.blk.comp {
		return x.corrupt(x.at, "block has %d compressed bytes, its header says %d", comp, x.blk.comp)
	}
	if x.blk.size >= 0 && x.out != x.blk.size {
		return x.corrupt(x.at, "block decodes to %d bytes, its header says %d", x.out, x.blk.size)
	}
	_, clen, _ := xzCheckOf(x.header)
	pad := int((4 - (int64(x.blk.n)+comp)%4) % 4)
	at := x.offset()
	b, _ := x.br.Peek(pad + clen)
	if len(b) < pad+clen {
		return x.corrupt(at, "block truncated before its check")
	}
	if !bytes.Equal(b[:pad], make([]byte, pad)) {
		return x.corrupt(at, "block padding is not zero")
	}
	x.behind.wait(nil)
	if !bytes.Equal(b[pad:], xzSum(x.check)) {
		return x.corrupt(at+int64(pad), "block check mismatch (the data is corrupt)")
	}
	x.br.Discard(pad + clen)
	x.records = append(x.records, xzSize{int64(x.blk.n) + comp + int64(clen), x.out})
	return nil
}

// index checks a stream's index and footer against the blocks read.
func (x *xzReader) index() error {
	at := x.offset()
	crc := crc32.NewIEEE()
	r := io.TeeReader(x.br, crc)
	var n int64 // index bytes read
	byteReader := func() (byte, error) {
		var b [1]byte
		_, err := io.ReadFull(r, b[:])
		n++
		return b[0], err
	}
	uvarint := func() (int64, error) {
		v, err := binary.ReadUvarint(io.ByteReader(byteReaderFunc(byteReader)))
		if err != nil || v > 1<<62 {
			return 0, x.corrupt(at, "index truncated or invalid")
		}
		return int64(v), nil
	}
	if _, err := byteReader(); err != nil { // the 0 indicator
		return x.corrupt(at, "index truncated")
	}
	count, err := uvarint()
	if err != nil {
		return err
	}
	if count != int64(len(x.records)) {
		return x.corrupt(at, "index lists %d blocks, the stream has %d", count, len(x.records))
	}
	for i := range count {
		u, err := uvarint()
		if err != nil {
			return err
		}
		s, err := uvarint()
		if err != nil {
			return err
		}
		if (xzSize{u, s}) != x.records[i] {
			return x.corrupt(at, "index record %d does not match its block", i)
		}
	}
	for n%4 != 0 {
		if c, err := byteReader(); err != nil || c != 0 {
			return x.corrupt(at, "index padding is not zero")
		}
	}
	want := crc.Sum32()
	var f [16]byte // the index CRC32 and the footer
	if _, err := io.ReadFull(x.br, f[:]); err != nil {
		return x.corrupt(at, "stream truncated in its index or footer")
	}
	le := binary.LittleEndian
	if le.Uint32(f[:4]) != want {
		return x.corrupt(at, "index CRC32 mismatch")
	}
	footer := f[4:]
	switch {
	case le.Uint32(footer[:4]) != crc32.ChecksumIEEE(footer[4:10]) || string(footer[10:]) != "YZ":
		return x.corrupt(at+n+4, "corrupt stream footer")
	case (int64(le.Uint32(footer[4:8]))+1)*4 != n+4:
		return x.corrupt(at+n+4, "stream footer's index size does not match the index")
	case !bytes.Equal(footer[8:10], x.header[6:8]):
		return x.corrupt(at+n+4, "stream footer's flags differ from the header's")
	}
	x.header = nil
	return nil
}

type byteReaderFunc func() (byte, error)

func (f byteReaderFunc) ReadByte() (byte, error) { return f() }

// checkBehind computes a block's check on another core, one buffer behind
// the decoder: the check of buffer k runs while buffer k+1 is decoded. The
// caller owns its buffers again as soon as Read returns, so before decoding
// into a buffer, the decoder waits for a check that still reads it (wait).
// On one core the check runs in line.
type checkBehind struct {
	busy []byte        // the buffer being hashed
	done chan struct{} // closed when it is
}

func (c *checkBehind) add(h hash.Hash, p []byte) {
	if h == nil || len(p) == 0 {
		return
	}
	if !multiCore() {
		h.Write(p)
		return
	}
	c.wait(nil)
	c.busy, c.done = p, make(chan struct{})
	go func(done chan struct{}) {
		h.Write(p)
		close(done)
	}(c.done)
}

// wait waits for the check to finish with its buffer if p shares memory
// with it; with p nil, it waits in any case.
func (c *checkBehind) wait(p []byte) {
	if c.busy == nil || p != nil && !overlaps(c.busy, p) {
		return
	}
	<-c.done
	c.busy = nil
}

// overlaps reports whether a and b share memory.
func overlaps(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	a0, b0 := uintptr(unsafe.Pointer(&a[0])), uintptr(unsafe.Pointer(&b[0]))
	return a0 < b0+uintptr(len(b)) && b0 < a0+uintptr(len(a))
}
