package flash

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"hash/maphash"
	"io"
	"sync"

	"bty/category"
)

// The scout: the sha256 of a raw image covers its holes too, and hashing a
// gigabyte of zeros takes most of a second; for a Rereadable source a second
// reader, the scout, hashes it ahead of the reader that feeds the target, so
// that this overlaps the writing and the final flush instead of following
// them. A source without holes is better read and hashed once: a second read
// would only cost a copy. The two reads are compared block by block with a
// keyed hash, so a file that changes under bty fails the flash instead of
// passing a digest that is not the one of the bytes written.

// scoutLead is how many bytes of file data (holes do not count) the scout may
// read ahead of the writing reader: they are in the page cache when that one
// reads them again. Holes are hashed as fast as the CPU allows, so the lead only
// bounds the read burst: on the bench's virtual disk, where the source and the
// target share one device, 256 MiB made qcow2 slower (bench/README.md).
const scoutLead = 32 << 20

// A scout reads and hashes a source ahead of the reader that feeds the target,
// and publishes a keyed sum of each blockSize block for that reader to compare.
type scout struct {
	stop context.CancelFunc
	seed maphash.Seed
	zero uint64 // the sum of a block of zeros

	mu     sync.Mutex
	cond   *sync.Cond
	sums   []scoutSum // published, not yet compared
	data   int64      // file data the scout has read
	used   int64      // file data up to the last block compared
	done   bool       // the scout has finished (see err)
	err    error      // why it stopped early
	size   int64      // bytes hashed, once done
	digest string     // once done
}

type scoutSum struct {
	sum  uint64
	data int64 // the scout's data count at the end of the block
}

func newScout(ctx context.Context, src Source) *scout {
	ctx, cancel := context.WithCancel(ctx)
	s := &scout{stop: cancel, seed: maphash.MakeSeed()}
	s.zero = maphash.Bytes(s.seed, zeroBlock)
	s.cond = sync.NewCond(&s.mu)
	wake := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	go func() {
		defer wake()
		size, digest, err := s.run(ctx, src)
		s.mu.Lock()
		s.done, s.err, s.size, s.digest = true, err, size, digest
		s.cond.Broadcast()
		s.mu.Unlock()
	}()
	return s
}

func (s *scout) run(ctx context.Context, src Source) (int64, string, error) {
	rc, _, err := src.Open(ctx, 0)
	if err != nil {
		return 0, "", &IOError{Side: SideSource, Err: err}
	}
	defer rc.Close()
	skip, _ := rc.(HoleSkipper)
	h := sha256.New()
	bs := newBlockSums(s.seed, s.zero, s.publish)
	buf := make([]byte, blockSize)
	for {
		if skip != nil {
			if n := skip.SkipHole(); n > 0 {
				// The hole's block sums first, which cost nothing and the
				// checker can compare at once; then the slow part.
				bs.zeros(n)
				hashZeros(h, n)
				continue
			}
		}
		if err := s.wait(ctx); err != nil {
			return 0, "", err
		}
		n, err := rc.Read(buf)
		h.Write(buf[:n])
		bs.write(buf[:n])
		s.mu.Lock()
		s.data += int64(n)
		s.mu.Unlock()
		if err == io.EOF {
			bs.end()
			return bs.off, hex.EncodeToString(h.Sum(nil)), nil
		}
		if err != nil {
			return 0, "", &IOError{Side: SideSource, Err: err}
		}
	}
}

// hashZeros feeds n zero bytes to h.
func hashZeros(h hash.Hash, n int64) {
	for n > 0 {
		k := min(n, int64(len(zeroBlock)))
		h.Write(zeroBlock[:k])
		n -= k
	}
}

// wait holds the scout back while it is scoutLead bytes of data ahead.
func (s *scout) wait(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.data-s.used >= scoutLead && ctx.Err() == nil {
		s.cond.Wait()
	}
	return ctx.Err()
}

func (s *scout) publish(sum uint64) {
	s.mu.Lock()
	s.sums = append(s.sums, scoutSum{sum: sum, data: s.data})
	s.cond.Broadcast()
	s.mu.Unlock()
}

// ready reports whether next would return without waiting.
func (s *scout) ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sums) > 0 || s.done
}

// next returns the scout's sum of the next block, waiting for it; ok is false
// when the scout ended without one (err says why, nil: the file ended there).
func (s *scout) next(ctx context.Context) (sum uint64, ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.sums) == 0 && !s.done && ctx.Err() == nil {
		s.cond.Wait()
	}
	switch {
	case ctx.Err() != nil:
		return 0, false, ctx.Err()
	case len(s.sums) == 0:
		return 0, false, s.err
	}
	e := s.sums[0]
	s.sums = s.sums[1:]
	s.used = e.data
	s.cond.Broadcast()
	return e.sum, true, nil
}

// result waits for the scout to finish and returns the length and digest it read.
func (s *scout) result(ctx context.Context) (int64, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for !s.done && ctx.Err() == nil {
		s.cond.Wait()
	}
	if ctx.Err() != nil {
		return 0, "", ctx.Err()
	}
	return s.size, s.digest, s.err
}

// checker compares the bytes the writing reader delivers with the scout's read.
// The writing reader does not wait for the scout: a block whose sum the scout
// has not published yet stays pending, and finish waits for the rest. So the
// writing reader may pass the scout, as at the final hole of an image, which
// the scout is still hashing while the target is flushed.
type checker struct {
	ctx     context.Context
	s       *scout
	name    string
	bs      blockSums
	pending []uint64 // the writing reader's sums not compared yet, oldest first
	err     error    // the first mismatch
	block   int64    // offset of the oldest pending block
}

func newChecker(ctx context.Context, s *scout, name string) *checker {
	c := &checker{ctx: ctx, s: s, name: name}
	c.bs = newBlockSums(s.seed, s.zero, c.add)
	return c
}

func (c *checker) add(sum uint64) {
	c.pending = append(c.pending, sum)
	c.compare(false)
}

// compare checks the pending blocks against the scout's sums: those the scout
// has published, or with wait all of them.
func (c *checker) compare(wait bool) {
	for c.err == nil && len(c.pending) > 0 && (wait || c.s.ready()) {
		want, ok, err := c.s.next(c.ctx)
		switch {
		case err != nil:
			c.err = err
		case !ok || c.pending[0] != want:
			c.err = fmt.Errorf("%w: %s changed while it was being read (the block at byte %d differs between two reads); flash it again when nothing writes to it", category.ErrIntegrity, c.name, c.block)
		}
		c.pending = c.pending[1:]
		c.block += blockSize
	}
}

// write feeds delivered bytes; it returns the first mismatch or scout failure.
func (c *checker) write(p []byte) error {
	c.bs.write(p)
	return c.err
}

// zeros feeds n zero bytes skipped in a hole.
func (c *checker) zeros(n int64) error {
	c.bs.zeros(n)
	return c.err
}

// finish checks the remaining blocks and the length, and returns the scout's
// digest.
func (c *checker) finish(n int64) (string, error) {
	c.bs.end()
	c.compare(true)
	if c.err != nil {
		return "", c.err
	}
	size, digest, err := c.s.result(c.ctx)
	if err != nil {
		return "", err
	}
	if size != n {
		return "", fmt.Errorf("%w: %s changed while it was being read (%d bytes, then %d); flash it again when nothing writes to it", category.ErrIntegrity, c.name, size, n)
	}
	return digest, nil
}

// blockSums cuts a byte stream into blockSize blocks and emits the keyed sum of
// each, the last one possibly short.
type blockSums struct {
	zero uint64 // the sum of a whole block of zeros
	emit func(uint64)
	h    maphash.Hash
	fill int64 // bytes of the current block summed so far
	off  int64 // bytes summed in all
}

func newBlockSums(seed maphash.Seed, zero uint64, emit func(uint64)) blockSums {
	b := blockSums{zero: zero, emit: emit}
	b.h.SetSeed(seed)
	return b
}

func (b *blockSums) write(p []byte) {
	for len(p) > 0 {
		k := min(int64(len(p)), blockSize-b.fill)
		b.h.Write(p[:k])
		p = p[k:]
		b.advance(k)
	}
}

// zeros feeds n zero bytes, whole blocks of them without hashing.
func (b *blockSums) zeros(n int64) {
	for n > 0 {
		if b.fill == 0 && n >= blockSize {
			b.emit(b.zero)
			b.off += blockSize
			n -= blockSize
			continue
		}
		k := min(n, blockSize-b.fill)
		b.write(zeroBlock[:k])
		n -= k
	}
}

func (b *blockSums) advance(k int64) {
	b.fill += k
	b.off += k
	if b.fill == blockSize {
		b.emit(b.h.Sum64())
		b.h.Reset()
		b.fill = 0
	}
}

// end emits the short last block, if any.
func (b *blockSums) end() {
	if b.fill > 0 {
		b.emit(b.h.Sum64())
		b.h.Reset()
		b.fill = 0
	}
}
