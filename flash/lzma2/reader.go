package lzma2

import (
	"errors"
	"fmt"
	"io"
)

// Errors. Every error from a corrupt or truncated stream wraps ErrCorrupt; a
// truncated stream also wraps io.ErrUnexpectedEOF.
var (
	ErrCorrupt = errors.New("lzma2: corrupt data")
	// ErrDistance: a match reaches back past the history (or the
	// dictionary size).
	ErrDistance = fmt.Errorf("%w: match distance past the start of the dictionary", ErrCorrupt)
)

// MaxDictSize is the largest dictionary an LZMA2 header can name (the xz
// format's limit, 4 GiB - 1). A Reader accepts any window up to it: its buffer
// grows with the output, so memory follows the bytes a stream decodes to, not
// the size its header claims.
const MaxDictSize = 1<<32 - 1

const (
	minBuf        = 64 << 10 // the window buffer's first size
	batchMin      = 1 << 20  // a larger buffer than the window, for long decode batches
	maxChunkComp  = 1 << 16  // compressed bytes in one LZMA chunk
	maxChunkUncom = 1 << 21  // uncompressed bytes in one LZMA chunk
)

// Reader decodes an LZMA2 chunk sequence (the payload of xz's LZMA2 filter)
// from an io.Reader. It reads exactly the bytes of the sequence, through its
// end marker, in whole chunks: give it a bufio.Reader (or anything whose small
// reads are cheap) and the bytes after the end marker stay there for the
// caller.
type Reader struct {
	r   io.Reader
	err error
	off int64 // input bytes consumed, for error messages

	chunkOff int64 // input offset of the current LZMA chunk's data

	// The window: a circular buffer of the last decoded bytes. It grows
	// from minBuf to maxBuf as the output does, and wraps once it is full.
	buf    []byte
	maxBuf int   // max(window, batchMin), rounded up to 16
	window int   // the dictionary size: no match reaches further back
	pos    int   // next byte to write in buf
	rd     int   // next byte of buf to return from Read (rd <= pos)
	base   int64 // bytes decoded since the dictionary reset, minus pos

	// Chunk state.
	needDict  bool // the next chunk must reset the dictionary
	needProps bool // the next LZMA chunk must set properties
	eos       bool // the end marker was read
	truncated bool // the input ended inside the current LZMA chunk
	left      int  // uncompressed bytes left in the current chunk
	lzma      bool // the current chunk is LZMA (else uncompressed)
	cbuf      []byte
	hdr       [6]byte

	d decoder
}

// NewReader returns a Reader of the LZMA2 sequence in r with a dictionary of
// window bytes (the size the xz block header names; a stream whose matches
// reach further back is corrupt, as in xz). Memory grows with the output to
// at most max(window, 1 MiB).
func NewReader(r io.Reader, window int) (*Reader, error) {
	z := new(Reader)
	if err := z.Reset(r, window); err != nil {
		return nil, err
	}
	return z, nil
}

// Reset makes z decode a new sequence from r, keeping its buffers.
func (z *Reader) Reset(r io.Reader, window int) error {
	if window < 1 || int64(window) > MaxDictSize {
		return fmt.Errorf("lzma2: dictionary size %d out of range", window)
	}
	z.r, z.err, z.off = r, nil, 0
	z.window = window
	z.maxBuf = (max(window, batchMin) + 15) &^ 15
	if len(z.buf) > z.maxBuf {
		z.buf = z.buf[:z.maxBuf]
	}
	z.pos, z.rd, z.base = 0, 0, 0
	z.needDict, z.needProps, z.eos, z.truncated = true, true, false, false
	z.left = 0
	return nil
}

// InputOffset is the offset after the last input byte consumed: the number
// of bytes consumed, plus the offset set by SetInputOffset.
func (z *Reader) InputOffset() int64 { return z.off }

// SetInputOffset says where the input starts in a larger file; the offsets in
// error messages and InputOffset count from there.
func (z *Reader) SetInputOffset(off int64) { z.off = off }

// Read decodes into p. It returns io.EOF after the end marker.
func (z *Reader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if z.rd < z.pos {
			k := copy(p[n:], z.buf[z.rd:z.pos])
			z.rd += k
			n += k
			continue
		}
		if z.err != nil {
			return n, z.err
		}
		z.err = z.fill()
	}
	return n, nil
}

// WriteTo decodes the rest of the sequence into w, from the window without
// copying.
func (z *Reader) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for {
		if z.rd < z.pos {
			k, err := w.Write(z.buf[z.rd:z.pos])
			z.rd += k
			n += int64(k)
			if err != nil {
				return n, err
			}
			continue
		}
		if z.err != nil {
			if z.err == io.EOF {
				return n, nil
			}
			return n, z.err
		}
		z.err = z.fill()
	}
}

// fill decodes more bytes into the window after pos; it is called once all
// the bytes before pos were returned.
func (z *Reader) fill() error {
	for z.left == 0 {
		if z.eos {
			return io.EOF
		}
		if err := z.chunk(); err != nil {
			return err
		}
	}
	if z.pos == len(z.buf) {
		z.grow()
	}
	limit := min(len(z.buf), z.pos+z.left)
	start := z.pos
	if z.lzma {
		if err := z.decode(limit); err != nil {
			return err
		}
	} else {
		k, err := io.ReadFull(z.r, z.buf[z.pos:limit])
		z.off += int64(k)
		z.pos += k
		if err != nil {
			return z.corrupt(noEOF(err), "uncompressed chunk")
		}
	}
	z.left -= z.pos - start
	if z.left == 0 && z.lzma {
		if err := z.endChunk(); err != nil {
			return err
		}
	}
	return nil
}

// grow makes room after a full buffer: a larger buffer while the window is
// not yet at its size, else a wrap to the start.
func (z *Reader) grow() {
	if len(z.buf) < z.maxBuf {
		n := min(max(2*len(z.buf), minBuf), z.maxBuf)
		if cap(z.buf) >= n {
			z.buf = z.buf[:n]
		} else {
			b := make([]byte, n)
			copy(b, z.buf[:z.pos])
			z.buf = b
		}
		return
	}
	z.base += int64(z.pos)
	z.pos, z.rd = 0, 0
}

// chunk reads the next chunk header.
func (z *Reader) chunk() error {
	h := z.hdr[:]
	if err := z.readFull(h[:1]); err != nil {
		return z.corrupt(noEOF(err), "chunk header")
	}
	c := h[0]
	switch {
	case c == 0:
		z.eos = true
		return nil
	case c == 1 || c >= 0xe0:
		z.needDict = false
		z.needProps = true
		// Every byte was returned before a chunk starts: the new
		// history starts at the beginning of the buffer.
		z.pos, z.rd, z.base = 0, 0, 0
	case z.needDict:
		return z.corrupt(nil, "first chunk does not reset the dictionary")
	case c > 2 && c < 0x80:
		return z.corrupt(nil, fmt.Sprintf("invalid chunk type %#02x", c))
	}
	if c < 0x80 { // uncompressed
		if err := z.readFull(h[1:3]); err != nil {
			return z.corrupt(noEOF(err), "chunk header")
		}
		z.left = int(h[1])<<8 | int(h[2]) + 1
		z.lzma = false
		return nil
	}
	n := 5
	if c >= 0xc0 {
		n = 6
	}
	if err := z.readFull(h[1:n]); err != nil {
		return z.corrupt(noEOF(err), "chunk header")
	}
	z.left = int(c&0x1f)<<16 | int(h[1])<<8 | int(h[2]) + 1
	csize := int(h[3])<<8 | int(h[4]) + 1
	switch {
	case c >= 0xc0:
		if err := z.d.setProps(h[5]); err != nil {
			return z.corrupt(nil, err.Error())
		}
		z.needProps = false
		z.d.reset()
	case z.needProps:
		return z.corrupt(nil, "LZMA chunk without properties after a dictionary reset")
	case c >= 0xa0:
		z.d.reset()
	}
	if cap(z.cbuf) < maxChunkComp {
		z.cbuf = make([]byte, maxChunkComp)
	}
	z.cbuf = z.cbuf[:csize]
	z.chunkOff = z.off
	k, err := io.ReadFull(z.r, z.cbuf)
	z.off += int64(k)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		// A truncated chunk: decode what its bytes determine, then
		// fail (decode stops before the first symbol that would need
		// a byte past them).
		z.truncated = true
		z.cbuf = z.cbuf[:k]
	case err != nil:
		return err
	}
	z.lzma = true
	z.d.pend = 0
	return z.d.initRC(z.cbuf, z)
}

// endChunk checks that an LZMA chunk used exactly its compressed bytes.
func (z *Reader) endChunk() error {
	d := &z.d
	if z.truncated {
		return z.truncatedErr()
	}
	if d.pend != 0 {
		return z.corrupt(nil, "match runs past the end of its chunk")
	}
	// The last bit may leave the range below 2^24, with one more byte to
	// take in.
	if d.rng < 1<<24 && d.ip < len(d.in) {
		d.rng <<= 8
		d.code = d.code<<8 | uint32(d.in[d.ip])
		d.ip++
	}
	if d.ip != len(d.in) || d.code != 0 {
		return z.corruptIn("LZMA chunk does not end where its header says", d.ip)
	}
	return nil
}

func (z *Reader) readFull(p []byte) error {
	n, err := io.ReadFull(z.r, p)
	z.off += int64(n)
	return err
}

// corrupt wraps ErrCorrupt (and err, if any) with what was being read and
// the input offset it was found at.
func (z *Reader) corrupt(err error, what string) error {
	if err != nil && err != io.ErrUnexpectedEOF {
		return err // the reader's own failure
	}
	if err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: %s truncated at input byte %d: %w", ErrCorrupt, what, z.off, err)
	}
	return fmt.Errorf("%w: %s, at input byte %d", ErrCorrupt, what, z.off)
}

func (z *Reader) truncatedErr() error {
	return fmt.Errorf("%w: LZMA chunk truncated at input byte %d: %w", ErrCorrupt, z.off, io.ErrUnexpectedEOF)
}

// corruptIn reports corruption found at byte ip of the current LZMA chunk.
func (z *Reader) corruptIn(what string, ip int) error {
	return fmt.Errorf("%w: %s, at input byte %d", ErrCorrupt, what, z.chunkOff+int64(min(ip, len(z.d.in))))
}

// noEOF turns the io.EOF of a read that got nothing into io.ErrUnexpectedEOF:
// inside a sequence, every end is premature.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
