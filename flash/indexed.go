package flash

import (
	"context"
	"crypto/sha256"
	"errors"
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
	if errors.Is(err, errUnlike) {
		// Fetching the rest block by block would take longer than the image
		// in one stream: flash it in full (its digest checked as ever) over
		// what the blocks so far left.
		if err := w.drain(); err != nil {
			return err
		}
		t.close()
		f.opt.Delta, f.fellBack = false, true
		f.res.Warnings = append(f.res.Warnings, unlikeWarning)
		return f.flash(target)
	}
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

// errUnlike stops fetchBlocks when the target holds less than an eighth of
// the image's data in the first indexProbe bytes of data compared, or the
// first eighth of the data if less (another image, a new disk, random
// bytes): each block it lacks is a request, the image one stream.
const indexProbe = 32 << 20

var errUnlike = errors.New("the target holds too little of the image for a delta")

const unlikeWarning = "the disk held less than an eighth of the image's data where it was compared: the image was flashed in full"

// indexRead is how much of the target one read of fetchBlocks covers: a
// run of blocks, since a 64 KiB read at a time leaves a disk idle between
// reads (most of all a virtual one).
const indexRead = 1 << 20

// fetchBlocks runs the blocks through the writer, inFlight runs of them at a
// time, each run read from the target at once.
func (f *flashRun) fetchBlocks(t *target, w *writer, ix *blockindex.Index) error {
	zeroSums := map[int64][32]byte{}
	for _, n := range []int64{ix.BlockSize, ix.Len(len(ix.Blocks) - 1)} {
		zeroSums[n] = sha256.Sum256(make([]byte, n))
	}
	per := int(max(1, indexRead/ix.BlockSize))
	var p probe
	// The probe ends at indexProbe bytes of data, or an eighth of the
	// image's data if that is less.
	limit := int64(0)
	for i, sum := range ix.Blocks {
		if sum != zeroSums[ix.Len(i)] {
			limit += ix.Len(i)
		}
	}
	limit = max(ix.BlockSize, min(indexProbe, limit/8))
	runs := (len(ix.Blocks) + per - 1) / per
	var next atomic.Int64
	g, ctx := errgroup.WithContext(f.ctx)
	for range inFlight {
		g.Go(func() error {
			buf := alignedBuf(per * int(ix.BlockSize))
			for {
				r := int(next.Add(1) - 1)
				if r >= runs || ctx.Err() != nil {
					return ctx.Err()
				}
				first, last := r*per, min(r*per+per, len(ix.Blocks))
				start := int64(first) * ix.BlockSize
				n := int64(last-1)*ix.BlockSize + ix.Len(last-1) - start
				got, err := w.readTarget(start, buf[:alignDown(n+t.align-1, t.align)])
				if err != nil {
					return err
				}
				for i := first; i < last; i++ {
					off := int64(i) * ix.BlockSize
					if err := f.fetchBlock(ctx, w, ix, i, got[off-start:off-start+ix.Len(i)], zeroSums, &p); err != nil {
						return err
					}
					if c := p.data.Load(); c >= limit && p.held.Load() < c/8 {
						return errUnlike
					}
				}
			}
		})
	}
	return g.Wait()
}

// probe counts the image's blocks compared with the target that the target
// may lack (its data, and its zeros where the target is not zero), and how
// much of them the target held.
type probe struct{ data, held atomic.Int64 }

// fetchBlock hands on block i of the image, given p, what the target holds
// there: as it is if its digest matches, zeroed if the image's block is
// zeros, else fetched (and checked) from the store.
func (f *flashRun) fetchBlock(ctx context.Context, w *writer, ix *blockindex.Index, i int, p []byte, zeroSums map[int64][32]byte, pr *probe) error {
	off, n, sum := int64(i)*ix.BlockSize, int64(len(p)), ix.Blocks[i]
	if sum == zeroSums[n] {
		if isZero(p) {
			return w.have(off, p)
		}
		pr.data.Add(n) // costs a write: counts as not held
		return w.Zero(off, n)
	}
	pr.data.Add(n)
	if sha256.Sum256(p) == sum {
		pr.held.Add(n)
		return w.have(off, p)
	}
	blk, moved, err := f.opt.Store.Fetch(ctx, sum, n)
	f.fetched.Add(moved)
	f.fetchedBlocks.Add(1)
	if err != nil {
		return err
	}
	return w.Data(off, blk)
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
