package flash

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"slices"

	"bty/category"
)

// readBack reads every range the writer made back from the target (O_DIRECT where
// the target allows it) and compares it with what was written: the sha256 of each
// data write, zeros for each zero range. It reports progress through done.
func (w *writer) readBack(done func(n int64)) error {
	slices.SortFunc(w.extents, func(a, b extent) int { return int(a.off - b.off) })
	buf := alignedBuf(blockSize + 8192)
	a := w.t.align
	for _, e := range w.extents {
		h := sha256.New()
		for off, end := e.off, e.off+e.n; off < end; {
			// Read the aligned window around [off, off+c) and take the slice.
			c := min(end-off, blockSize)
			lo, hi := alignDown(off, a), alignDown(off+c+a-1, a)
			if w.t.isDev && hi > w.t.size {
				hi = w.t.size
			}
			n, err := w.t.readAt(buf[:hi-lo], lo)
			if err != nil {
				return err
			}
			if int64(n) < off-lo+c {
				return fmt.Errorf("%w: verify: %s ends at byte %d, before the image does", category.ErrIntegrity, w.t.path, lo+int64(n))
			}
			p := buf[off-lo : off-lo+c]
			if e.zero && !isZero(p) {
				i := bytes.IndexFunc(p, func(r rune) bool { return r != 0 })
				return fmt.Errorf("%w: verify: %s holds non-zero bytes at offset %d, where zeros were written", category.ErrIntegrity, w.t.path, off+int64(max(i, 0)))
			}
			if !e.zero {
				h.Write(p)
			}
			off += c
			done(c)
		}
		if !e.zero && !bytes.Equal(h.Sum(nil), e.sum[:]) {
			return fmt.Errorf("%w: verify: %s differs from the image in bytes %d to %d", category.ErrIntegrity, w.t.path, e.off, e.off+e.n)
		}
	}
	return nil
}
