package flash

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"bty/blockindex"
	"bty/category"
)

// BlockStore is an image as its block index and a way to fetch a block by
// its digest (catalog.Blocks): with Options.Delta, Flash hashes the target's
// blocks, fetches only those whose digest differs from the index's, and
// writes them through the delta writer, in the same crash-safe order. The
// source is not read.
type BlockStore interface {
	// Index is the image's block index, checked against its catalog.
	Index() *blockindex.Index
	// Fetch returns the block with digest sum, size bytes, checked against
	// sum, and the bytes it took to fetch it.
	Fetch(ctx context.Context, sum [32]byte, size int64) (block []byte, moved int64, err error)
}

// flashIndexed is flash from a block index: open the target, compare each
// block's digest with the target's, fetch and hand on what differs, finish.
//
//	block i -> read the target there -> zero digest: zero? have : writer.Zero
//	                                 -> sha256 == index? have (skipped)
//	                                 -> fetch, checked -> writer.Data (grains that differ)
func (f *flashRun) flashIndexed(target string) error {
	ix := f.opt.Store.Index()
	if ix.BlockSize%deltaGrain != 0 || ix.BlockSize > 64<<20 {
		return fmt.Errorf("%w: block index of %s: block size %d is not a multiple of %d", category.ErrIntegrity, f.src.Name(), ix.BlockSize, deltaGrain)
	}
	f.info = Info{SourceSize: -1, ImageSize: ix.Length, Exact: true}
	f.res.ImageSize = ix.Length
	f.imageSize.Store(ix.Length)
	t, err := f.openTarget(target)
	if err != nil {
		return err
	}
	defer t.close()
	f.rep.setPhase(PhaseWriting)
	w := newWriter(f.ctx, t, newPool(16), f.opt.Verify, true)
	f.w.Store(w)
	err = f.fetchBlocks(t, w, ix)
	if err == nil {
		w.flushBehind()
	}
	derr := w.drain()
	switch {
	case f.ctx.Err() != nil:
		return f.ctx.Err()
	case err != nil:
		return err
	case derr != nil:
		return derr
	}
	return f.finish(t, w)
}

// fetchBlocks runs the blocks through the writer, inFlight at a time.
func (f *flashRun) fetchBlocks(t *target, w *writer, ix *blockindex.Index) error {
	zeroSums := map[int64][32]byte{}
	for _, n := range []int64{ix.BlockSize, ix.Len(len(ix.Blocks) - 1)} {
		zeroSums[n] = sha256.Sum256(make([]byte, n))
	}
	var next atomic.Int64
	g, ctx := errgroup.WithContext(f.ctx)
	for range inFlight {
		g.Go(func() error {
			buf := alignedBuf(int(ix.BlockSize))
			for {
				i := int(next.Add(1) - 1)
				if i >= len(ix.Blocks) || ctx.Err() != nil {
					return ctx.Err()
				}
				off, n := int64(i)*ix.BlockSize, ix.Len(i)
				got, err := w.readTarget(off, buf[:alignDown(n+t.align-1, t.align)])
				if err != nil {
					return err
				}
				p, sum := got[:n], ix.Blocks[i]
				if sum == zeroSums[n] {
					if isZero(p) {
						err = w.have(off, p)
					} else {
						err = w.Zero(off, n)
					}
				} else if sha256.Sum256(p) == sum {
					err = w.have(off, p)
				} else {
					var blk []byte
					var moved int64
					blk, moved, err = f.opt.Store.Fetch(ctx, sum, n)
					f.fetched.Add(moved)
					f.fetchedBlocks.Add(1)
					if err == nil {
						err = w.Data(off, blk)
					}
				}
				if err != nil {
					return err
				}
			}
		})
	}
	return g.Wait()
}

// have notes that the target holds p at off already (its digest said so):
// skipped, and kept where the writer holds the image until the end (the
// first MiB, the device's last MiB).
func (w *writer) have(off int64, p []byte) error {
	w.in.Lock()
	defer w.in.Unlock()
	if _, err := w.fit(off, off+int64(len(p))); err != nil {
		return err
	}
	if off < headSize {
		k := copy(w.head[off:], p)
		off, p = off+int64(k), p[k:]
	}
	if end := off + int64(len(p)); end > w.tailOff {
		lo := max(off, w.tailOff)
		copy(w.tail[lo-w.tailOff:], p[lo-off:])
		p = p[:lo-off]
	}
	if len(p) > 0 {
		w.skipped.Add(int64(len(p)))
		if w.verify {
			w.record(extent{off: off, n: int64(len(p)), sum: sha256.Sum256(p)})
		}
	}
	return nil
}

// indexDigest is the decoded image's digest an index names, in hex.
func indexDigest(ix *blockindex.Index) string { return strings.TrimPrefix(ix.Digest, "sha256:") }
