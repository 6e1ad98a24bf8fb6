package flash

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"

	"github.com/klauspost/compress/zstd"

	"bty/format"
)

const zstdMagic = "\x28\xb5\x2f\xfd"

// zstd: klauspost's decoder with a window up to 2 GiB (zstd --long=31), fed
// through zstdRawRLE, decoding in the reading goroutine: its concurrent mode
// hands each block between goroutines, and on the 2-core benchmark machine
// that cost more than it gained (1 GiB image: 0.40-0.43 s decoding alone,
// against 0.56-0.66 s concurrent; a flash 0.76-0.92 s against 0.95-1.00 s).
// A stream may start with skippable frames (pzstd writes one). The decoded
// size comes from the first data frame's Frame_Content_Size when the encoder
// wrote it.
var zstdProber = prober{
	format: format.Zstd,
	size:   zstdSize,
	open: func(src opened) (decoder, error) {
		return newReaderDecoder(src, func(r io.Reader) (io.Reader, error) {
			d, err := zstd.NewReader(newZstdRawRLE(r), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(1<<31), zstd.WithDecoderMaxMemory(1<<40))
			if err != nil {
				return nil, err
			}
			return d.IOReadCloser(), nil
		})
	},
}

func isZstdSkippable(h []byte) bool {
	return len(h) >= 4 && h[0]&0xf0 == 0x50 && h[1] == 0x2a && h[2] == 0x4d && h[3] == 0x18
}

// zstdSize is the first data frame's Frame_Content_Size. zstd writes one
// frame whatever the thread count, so that is the image's size; a stream that
// starts with a skippable frame comes from pzstd or a seekable writer, which
// write a frame per chunk, and there it is only a lower bound. (Several plain
// frames, cat a.zst b.zst, read as exact and are not: the size shown is then
// low, and the refusal of a too-small target, which needs only a lower bound,
// still right.)
func zstdSize(_ context.Context, head []byte, _ io.ReaderAt, _ int64) (int64, bool) {
	n := zstdFrameSize(head)
	return n, n >= 0 && !isZstdSkippable(head)
}

// zstdFrameSize reads Frame_Content_Size from the first data frame's header,
// after any skippable frames; -1 when it is not recorded.
func zstdFrameSize(head []byte) int64 {
	for isZstdSkippable(head) && len(head) >= 8 {
		skip := 8 + int64(binary.LittleEndian.Uint32(head[4:8]))
		if skip >= int64(len(head)) {
			return -1
		}
		head = head[skip:]
	}
	if !hasPrefix(head, zstdMagic) || len(head) < 5 {
		return -1
	}
	fhd := head[4]
	single := fhd&0x20 != 0
	pos := 5
	if !single {
		pos++ // window descriptor
	}
	pos += []int{0, 1, 2, 4}[fhd&3] // dictionary id
	var n int
	switch fhd >> 6 {
	case 0:
		if !single {
			return -1 // size not recorded
		}
		n = 1
	case 1:
		n = 2
	case 2:
		n = 4
	case 3:
		n = 8
	}
	if len(head) < pos+n {
		return -1
	}
	b := head[pos : pos+n]
	switch n {
	case 1:
		return int64(b[0])
	case 2:
		return int64(binary.LittleEndian.Uint16(b)) + 256
	case 4:
		return int64(binary.LittleEndian.Uint32(b))
	default:
		v := binary.LittleEndian.Uint64(b)
		if v > 1<<62 {
			return -1
		}
		return int64(v)
	}
}

// zstdRawRLE passes a zstd stream through with every RLE block (one byte
// repeated up to 128 KiB, how zstd writes a run such as a disk's free space)
// rewritten as the raw block of the same bytes. The output is the same; the
// point is speed. klauspost/compress v1.20.4 fills an RLE block a byte at a
// time, and on a disk image that is mostly zeros that loop was a third of
// the decoding time; a raw block costs it one copy. Decoding the benchmark's
// 1 GiB image (636 MiB of it in 5,089 RLE blocks) took 1.25 s through the
// library alone and 0.47-0.52 s through this reader (both at the library's
// default concurrency); zstd -dc takes 0.63-0.85 s on the same machine.
//
// Only the framing is parsed: frame headers, block headers, checksums and
// skippable frames are passed through unchanged, and whatever is not a zstd
// frame (a corrupt header, trailing bytes) is passed through as it is, for
// the decoder to report. A stream ending inside a structure is
// io.ErrUnexpectedEOF.
type zstdRawRLE struct {
	r     *bufio.Reader
	state zstdState
	next  zstdState // the state after the bytes being passed or filled
	left  int64     // bytes left to pass or fill
	out   []byte    // a rewritten block header not yet read
	hdr   [3]byte
	run   []byte // zstdMaxBlock bytes of the value being filled
	check bool   // the frame ends with a 4-byte checksum
}

type zstdState int

const (
	zstdFrame    zstdState = iota // at the start of a frame
	zstdBlock                     // at a block header
	zstdChecksum                  // at a frame's checksum
	zstdPass                      // passing left bytes through
	zstdFill                      // filling left bytes of run
	zstdRest                      // passing everything through
)

// zstdMaxBlock is the largest block a zstd frame may hold (Block_Maximum_Size).
const zstdMaxBlock = 128 << 10

func newZstdRawRLE(r io.Reader) io.Reader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	return &zstdRawRLE{r: br}
}

func (z *zstdRawRLE) Read(p []byte) (int, error) {
	for {
		if len(z.out) > 0 {
			n := copy(p, z.out)
			z.out = z.out[n:]
			return n, nil
		}
		switch z.state {
		case zstdFrame:
			h, err := z.r.Peek(8) // a skippable frame's magic and size; a frame's magic and descriptor
			switch {
			case len(h) == 0 && err == io.EOF:
				return 0, io.EOF
			case len(h) == 0:
				return 0, err
			case isZstdSkippable(h) && len(h) >= 8:
				z.pass(8+int64(binary.LittleEndian.Uint32(h[4:8])), zstdFrame)
			case len(h) >= 5 && hasPrefix(h, zstdMagic):
				fhd := h[4]
				n := 5 + []int64{0, 1, 2, 4}[fhd&3] + []int64{0, 2, 4, 8}[fhd>>6]
				if fhd&0x20 == 0 || fhd>>6 == 0 {
					n++ // the window descriptor, or a 1-byte content size
				}
				z.check = fhd&4 != 0
				z.pass(n, zstdBlock)
			default:
				z.state = zstdRest
			}
		case zstdBlock:
			if _, err := io.ReadFull(z.r, z.hdr[:]); err != nil {
				return 0, unexpected(err)
			}
			bh := uint32(z.hdr[0]) | uint32(z.hdr[1])<<8 | uint32(z.hdr[2])<<16
			after := zstdBlock
			if bh&1 != 0 { // the frame's last block
				after = zstdFrame
				if z.check {
					after = zstdChecksum
				}
			}
			size := int64(bh >> 3)
			if rle := bh>>1&3 == 1; !rle || size > zstdMaxBlock {
				// raw, compressed, reserved, or an RLE block too large: as it is
				if rle {
					size = 1
				}
				z.out = z.hdr[:]
				z.pass(size, after)
				continue
			}
			v, err := z.r.ReadByte()
			if err != nil {
				return 0, unexpected(err)
			}
			bh &^= 3 << 1 // block type 0: raw
			z.hdr = [3]byte{byte(bh), byte(bh >> 8), byte(bh >> 16)}
			z.out = z.hdr[:]
			if len(z.run) == 0 || z.run[0] != v {
				z.run = bytes.Repeat([]byte{v}, zstdMaxBlock)
			}
			z.state, z.left, z.next = zstdFill, size, after
		case zstdChecksum:
			z.pass(4, zstdFrame)
		case zstdPass:
			if z.left == 0 {
				z.state = z.next
				continue
			}
			n, err := z.r.Read(p[:min(int64(len(p)), z.left)])
			z.left -= int64(n)
			if err == io.EOF && z.left > 0 {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		case zstdFill:
			if z.left == 0 {
				z.state = z.next
				continue
			}
			n := copy(p[:min(int64(len(p)), z.left)], z.run)
			z.left -= int64(n)
			return n, nil
		default: // zstdRest
			return z.r.Read(p)
		}
	}
}

// pass passes the next n bytes through, then goes to state next.
func (z *zstdRawRLE) pass(n int64, next zstdState) {
	z.state, z.left, z.next = zstdPass, n, next
}

// unexpected is err, or io.ErrUnexpectedEOF for io.EOF: the stream ended
// inside a frame.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
