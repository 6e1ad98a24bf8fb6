package flash

import (
	"context"
	"encoding/binary"
	"io"

	"github.com/klauspost/compress/zstd"

	"bty/format"
)

const zstdMagic = "\x28\xb5\x2f\xfd"

// zstd: klauspost's decoder with a window up to 2 GiB (zstd --long=31). A stream
// may start with skippable frames (pzstd writes one). The decoded size comes from
// the first data frame's Frame_Content_Size when the encoder wrote it.
var zstdProber = prober{
	format: format.Zstd,
	size:   zstdSize,
	open: func(src opened) (decoder, error) {
		return newReaderDecoder(src, func(r io.Reader) (io.Reader, error) {
			d, err := zstd.NewReader(r, zstd.WithDecoderMaxWindow(1<<31), zstd.WithDecoderMaxMemory(1<<40))
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
