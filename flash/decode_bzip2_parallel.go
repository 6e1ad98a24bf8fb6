package flash

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"

	"github.com/dsnet/compress/bzip2"
)

// bzip2 blocks are independent, as xz's are, but a bzip2 stream records neither
// where its blocks start (they are not byte-aligned) nor what they decode to.
// bzScanner finds each block by its 48-bit magic at any bit offset as the source
// streams by (it is read once, from start to end, and hashed on the way), and
// copies the block's bits into a stream of its own: a header, the block, and an
// end-of-stream marker whose checksum is the block's. Workers decode those
// streams at once; the outputs are delivered in order, each where the previous
// one ended. Each block's data is checked against its own CRC by the decoder,
// and the sequence of blocks against the stream's combined CRC by the scanner,
// so a block missed or invented shows as corruption, never as a wrong image.

const (
	bzBlockMagic uint64 = 0x314159265359 // π
	bzEndMagic   uint64 = 0x177245385090 // √π
	bzMagicMask  uint64 = 1<<48 - 1

	// bzMaxWorkers bounds the decoders: each holds some 7 MiB for a level 9
	// block (the BWT's arrays) besides its buffers.
	bzMaxWorkers = 4
	// bzOutBuf is how much output a worker decodes ahead while an earlier
	// block is still being delivered. The costly part of a block (Huffman,
	// move-to-front, inverse BWT) is done before its first output byte; the
	// rest is run-length expansion.
	bzOutBuf = 1 << 20
	// bzMaxBlock bounds a block's compressed size: at most 900,001 symbols of
	// at most 20 bits, and the tables before them.
	bzMaxBlock = 3 << 20
)

// bzCand[b] has bit s set when the block magic at bit shift s within a byte
// has b as its second byte, and bit 8+s for the end magic: a one-table filter
// that leaves about one byte in thirty for a full look.
var bzCand = func() (t [256]uint16) {
	for s := range 8 {
		t[bzBlockMagic>>(32+s)&0xff] |= 1 << s
		t[bzEndMagic>>(32+s)&0xff] |= 1 << (8 + s)
	}
	return t
}()

// bzScanner cuts a bzip2 source (one stream or several concatenated, as pbzip2
// and lbzip2 write) into single-block streams.
type bzScanner struct {
	r     io.Reader
	buf   []byte // source bytes from byte offset base
	base  int64
	eof   bool
	pos   int64  // bit offset of the next block or end marker, or of the next stream header
	level byte   // '1'..'9' of the current stream; 0 between streams
	crc   uint32 // combined CRC of the current stream's blocks so far
	first []byte // a block read ahead for the tar check, dispatched first
}

func newBzScanner(r io.Reader) *bzScanner { return &bzScanner{r: r} }

// more reads more of the source, dropping what lies before the current position.
func (s *bzScanner) more() error {
	if s.eof {
		return io.ErrUnexpectedEOF
	}
	if drop := s.pos>>3 - s.base; drop > 0 {
		s.buf = s.buf[:copy(s.buf, s.buf[drop:])]
		s.base += drop
	}
	if cap(s.buf)-len(s.buf) < 256<<10 {
		s.buf = append(s.buf, make([]byte, 256<<10)...)[:len(s.buf)]
	}
	n, err := s.r.Read(s.buf[len(s.buf):cap(s.buf)])
	s.buf = s.buf[:len(s.buf)+n]
	if err == io.EOF {
		s.eof = true
		return nil
	}
	return err
}

// bits returns the n <= 57 bits at bit offset pos, or ok false when the bytes
// are not read yet (or, at the end of the source, do not exist).
func (s *bzScanner) bits(pos int64, n uint) (v uint64, ok bool) {
	i := pos>>3 - s.base
	need := (pos&7 + int64(n) + 7) >> 3
	if i < 0 || i+need > int64(len(s.buf)) {
		return 0, false
	}
	var w [8]byte
	copy(w[:], s.buf[i:])
	return binary.BigEndian.Uint64(w[:]) << (pos & 7) >> (64 - n), true
}

// need returns the n <= 57 bits at bit offset pos, reading more of the source
// as needed.
func (s *bzScanner) need(pos int64, n uint) (uint64, error) {
	for {
		if v, ok := s.bits(pos, n); ok {
			return v, nil
		}
		if err := s.more(); err != nil {
			return 0, err
		}
	}
}

// next returns the next block as a stream of its own, or io.EOF after the last
// stream's end marker.
func (s *bzScanner) next() ([]byte, error) {
	if b := s.first; b != nil {
		s.first = nil
		return b, nil
	}
	for {
		if s.level == 0 {
			// A stream header, byte-aligned: "BZh" and the level.
			for s.pos>>3-s.base+4 > int64(len(s.buf)) && !s.eof {
				if err := s.more(); err != nil {
					return nil, err
				}
			}
			h := s.buf[s.pos>>3-s.base:]
			if len(h) == 0 && s.base+int64(len(s.buf)) > 0 {
				return nil, io.EOF
			}
			if !isBzHeader(h) {
				return nil, fmt.Errorf("no bzip2 stream header at byte %d", s.pos>>3)
			}
			s.level, s.crc = h[3], 0
			s.pos += 32
		}
		magic, err := s.need(s.pos, 48)
		if err != nil {
			return nil, err
		}
		sum, err := s.need(s.pos+48, 32) // the block's or the stream's CRC
		if err != nil {
			return nil, err
		}
		switch magic {
		case bzEndMagic:
			if uint32(sum) != s.crc {
				return nil, fmt.Errorf("bzip2 stream checksum mismatch at byte %d", s.pos>>3)
			}
			s.pos = (s.pos + 80 + 7) &^ 7
			s.level = 0
			continue
		case bzBlockMagic:
		default:
			return nil, fmt.Errorf("no bzip2 block where one should start, at byte %d", s.pos>>3)
		}
		s.crc = (s.crc<<1 | s.crc>>31) ^ uint32(sum)
		end, err := s.find(s.pos + 48)
		if err != nil {
			return nil, err
		}
		b := s.stream(s.pos, end, uint32(sum))
		s.pos = end
		return b, nil
	}
}

// find returns the bit offset of the first block or end marker at or after
// from, reading more of the source as needed. A block magic counts when the
// header after it is plausible (not randomized, origin pointer inside the
// block), an end magic when its checksum is the stream's so far or a new stream
// or the end of the source follows it: a magic that the compressed bits of a
// block happen to contain (one chance in 2^48 per bit) is passed over.
func (s *bzScanner) find(from int64) (int64, error) {
	for at := from >> 3; ; { // at: the next byte to look at, from the start of the source
		for {
			i := at - s.base
			if i+16 > int64(len(s.buf)) && (!s.eof || i+8 > int64(len(s.buf))) {
				break
			}
			if c := bzCand[s.buf[i+1]]; c != 0 {
				w := binary.BigEndian.Uint64(s.buf[i:])
				for sh := range int64(8) {
					pos := at<<3 + sh
					if pos < from {
						continue
					}
					m := w >> (16 - sh) & bzMagicMask
					switch {
					case c&(1<<sh) != 0 && m == bzBlockMagic && s.blockAt(pos):
						return pos, nil
					case c&(1<<(8+sh)) != 0 && m == bzEndMagic:
						if ok, err := s.endAt(pos); err != nil || ok {
							return pos, err
						}
					}
				}
			}
			at++
		}
		if s.eof {
			return 0, fmt.Errorf("bzip2 stream ends inside the block at byte %d: %w", s.pos>>3, io.ErrUnexpectedEOF)
		}
		if s.base+int64(len(s.buf))-s.pos>>3 > bzMaxBlock {
			return 0, fmt.Errorf("no end to the bzip2 block at byte %d within %d bytes", s.pos>>3, bzMaxBlock)
		}
		if err := s.more(); err != nil {
			return 0, err
		}
	}
}

// blockAt checks the header fields after a block magic at pos.
func (s *bzScanner) blockAt(pos int64) bool {
	v, ok := s.bits(pos+48+32, 25) // randomized bit, origin pointer
	return ok && v>>24 == 0 && v&(1<<24-1) < uint64(s.level-'0')*100000
}

// endAt checks an end magic at pos, reading ahead as far as the next stream
// header if it has to.
func (s *bzScanner) endAt(pos int64) (bool, error) {
	for {
		sum, ok := s.bits(pos+48, 32)
		if ok && uint32(sum) == s.crc {
			return true, nil
		}
		next := (pos+80+7)>>3 - s.base
		switch {
		case ok && next == int64(len(s.buf)) && s.eof:
			return true, nil // the checksum is wrong: next reports it
		case next+4 <= int64(len(s.buf)):
			return isBzHeader(s.buf[next:]), nil
		case s.eof:
			return false, nil
		}
		// more keeps the bytes from s.pos on, and pos is after it.
		if err := s.more(); err != nil {
			return false, err
		}
	}
}

// stream copies the block at bits [from, to) into a stream of its own.
func (s *bzScanner) stream(from, to int64, sum uint32) []byte {
	n := to - from
	out := make([]byte, 4, 4+(n+7)>>3+11)
	copy(out, "BZh")
	out[3] = s.level
	src := s.buf[from>>3-s.base:]
	sh := uint(from & 7)
	for k := range (n + 7) >> 3 {
		v := src[k] << sh
		if sh > 0 && k+1 < int64(len(src)) {
			v |= src[k+1] >> (8 - sh)
		}
		out = append(out, v)
	}
	if r := n & 7; r != 0 {
		out[len(out)-1] &= 0xff << (8 - r)
	}
	w := bitWriter{b: out, n: 32 + n}
	w.put(bzEndMagic, 48)
	w.put(uint64(sum), 32)
	return w.b
}

// bitWriter appends bits to b, MSB first; n bits of b are used.
type bitWriter struct {
	b []byte
	n int64
}

func (w *bitWriter) put(v uint64, k int) {
	for j := k - 1; j >= 0; j-- {
		if w.n&7 == 0 {
			w.b = append(w.b, 0)
		}
		if v>>j&1 != 0 {
			w.b[w.n>>3] |= 0x80 >> (w.n & 7)
		}
		w.n++
	}
}

// head decodes the start of the first block, for the tar check; the block is
// kept and dispatched first.
func (s *bzScanner) head() ([]byte, error) {
	b, err := s.next()
	if err == io.EOF {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s.first = b
	d, _ := bzip2.NewReader(bytes.NewReader(b), nil)
	head := make([]byte, sniffLen)
	n, err := fill(d, head)
	if err != nil && err != io.EOF {
		return nil, err
	}
	return head[:n], nil
}

// bzDecoder decodes the blocks of a bzip2 source on several workers.
type bzDecoder struct{ s *bzScanner }

func newBzDecoder(src opened) bzDecoder {
	return bzDecoder{newBzScanner(src.in)}
}

func (d bzDecoder) head() ([]byte, error) { return d.s.head() }

func (d bzDecoder) stream(ctx context.Context, sink blockSink) error {
	return bzip2Parallel(ctx, d.s, sink)
}

// bzip2Parallel decodes the blocks s finds on several workers into sink. A
// worker decodes the first bzOutBuf bytes of its block, waits for its turn,
// which brings the offset where the previous block ended, delivers, decodes
// and delivers the rest, and passes its end on.
func bzip2Parallel(ctx context.Context, s *bzScanner, sink blockSink) error {
	workers := min(runtime.GOMAXPROCS(0), bzMaxWorkers)
	read := func(ctx context.Context, send func([]byte) error) error {
		for {
			b, err := s.next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if err := send(b); err != nil {
				return err
			}
		}
	}
	return ordered(ctx, workers, read, func() (func([]byte, turn) error, func()) {
		d, _ := bzip2.NewReader(bytes.NewReader(nil), nil)
		out := make([]byte, bzOutBuf)
		return func(stream []byte, t turn) error {
			if err := d.Reset(bytes.NewReader(stream)); err != nil {
				return err
			}
			n, err := fill(d, out)
			off, werr := t.wait()
			if werr != nil {
				return werr
			}
			for {
				if n > 0 {
					if err := sink.Data(off, out[:n]); err != nil {
						return err
					}
					off += int64(n)
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					return err
				}
				n, err = fill(d, out)
			}
			t.pass(off)
			return nil
		}, nil
	})
}
