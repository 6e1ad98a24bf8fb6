package flash

import (
	"context"
	"unsafe"
)

const (
	blockSize = 1 << 20 // one unit of decoding, zero detection and writing
	headSize  = 1 << 20 // the image's first MiB, held back until the end
)

// alignedBuf returns n bytes whose address is a multiple of 4096, as O_DIRECT
// requires of user buffers.
func alignedBuf(n int) []byte {
	b := make([]byte, n+4096)
	off := int(-uintptr(unsafe.Pointer(&b[0])) & 4095)
	return b[off : off+n : off+n]
}

// zeroBlock is a block of zeros, never written to.
var zeroBlock = alignedBuf(blockSize)

// pool is a bounded set of aligned blocks: decoding waits for a free block, so
// memory stays flat whatever the image size.
type pool struct{ free chan []byte }

func newPool(blocks int) *pool {
	p := &pool{free: make(chan []byte, blocks)}
	arena := alignedBuf(blocks * blockSize)
	for i := range blocks {
		p.free <- arena[i*blockSize : (i+1)*blockSize : (i+1)*blockSize]
	}
	return p
}

func (p *pool) get(ctx context.Context) ([]byte, error) {
	select {
	case b := <-p.free:
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *pool) put(b []byte) { p.free <- b[:blockSize] }

// isZero reports whether b is all zero bytes, eight at a time.
func isZero(b []byte) bool {
	for len(b) >= 8 {
		if *(*uint64)(unsafe.Pointer(&b[0])) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
