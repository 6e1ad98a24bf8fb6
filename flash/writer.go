package flash

import (
	"context"
	"crypto/sha256"
	"io"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sync/errgroup"
)

// blockSink is where a decoder delivers the image: pieces at absolute offsets
// in any order (Data, Zero; p is only valid during the call), or, from a
// decoder that produces the image in order, all of it from a reader
// (ReadFrom), read straight into the sink's aligned blocks. Take is Data
// without the copy: the sink keeps p until it calls release (once, whatever
// happens), so that the raw path writes the source's own buffers. Ranges
// never delivered read as zero. It is safe for concurrent use. The writer is
// the one used by Flash.
type blockSink interface {
	Data(off int64, p []byte) error
	Take(off int64, p []byte, release func()) error
	Zero(off, n int64) error
	ReadFrom(r io.Reader) (int64, error)
}

var _ blockSink = (*writer)(nil)

// job is one I/O for a writer goroutine: a data write from a pool block (or a
// buffer given to Take), or a zero range.
type job struct {
	off     int64
	buf     []byte // nil for a zero range
	n       int64  // length of a zero range
	release func() // gives buf's block back after the write, if set
	zero    bool
}

// piece is an unaligned fragment written through the page cache at the end.
type piece struct {
	off int64
	p   []byte // nil: n zero bytes
	n   int64
}

// extent is a range the writer made, remembered for read-back verification.
type extent struct {
	off, n int64
	zero   bool
	sum    [32]byte
}

// writer turns image pieces into aligned direct writes and zero ranges, holds the
// image's first MiB back, and keeps several writes in flight. Producers (the
// decoder's goroutines) call Data, Zero and ReadFrom, one at a time (in);
// Flash calls the rest once they are done.
type writer struct {
	t      *target
	pool   *pool
	jobs   chan job
	g      *errgroup.Group
	ctx    context.Context
	verify bool

	in      sync.Mutex // serializes the producers
	head    []byte     // the image's first MiB, written last
	end     int64      // highest image offset seen
	zOff    int64      // pending zero range, coalesced
	zLen    int64
	pieces  []piece
	acc     []byte // accumulating block for Data; acc[i] is image offset accBase+i
	accBase int64
	accLo   int64 // first offset filled in acc
	accHi   int64 // one past the last offset filled

	written, zeroed atomic.Int64
	mu              sync.Mutex
	extents         []extent

	delta  bool        // compare with the target, write what differs (delta.go)
	wiped  atomic.Bool // the target's ends were wiped (prepare)
	wipeMu sync.Mutex
	// tail holds what the device's last MiB, from tailOff, must hold at
	// the end; nil when a delta is not on a device with one.
	tail                []byte
	tailOff             int64
	targetRead, skipped atomic.Int64
	compared, matched   atomic.Int64 // delta: bytes compared, found in place
	full                atomic.Bool  // delta: the target differs all over; write as a full flash does
}

// inFlight is how many writes run at once: enough to keep a device queue busy
// while the producer decodes the next blocks.
const inFlight = 4

// zeroSlice is the largest range one zeroing call is given.
const zeroSlice = 32 << 20

func newWriter(ctx context.Context, t *target, p *pool, verify, delta bool) *writer {
	g, ctx := errgroup.WithContext(ctx)
	w := &writer{t: t, pool: p, jobs: make(chan job, inFlight), g: g, ctx: ctx, verify: verify, head: alignedBuf(headSize),
		delta: delta, tailOff: t.tailStart()}
	if delta && t.isDev && w.tailOff < t.size {
		w.tail = alignedBuf(int(t.size - w.tailOff))
	}
	for range inFlight {
		g.Go(w.run)
	}
	return w
}

// wipe destroys what could boot on the target (target.prepare), once.
func (w *writer) wipe() error {
	if w.wiped.Load() {
		return nil
	}
	w.wipeMu.Lock()
	defer w.wipeMu.Unlock()
	if w.wiped.Load() {
		return nil
	}
	if err := w.t.prepare(); err != nil {
		return err
	}
	w.wiped.Store(true)
	return nil
}

func (w *writer) run() error {
	var rbuf []byte // a delta's reads of the target
	if w.delta {
		rbuf = alignedBuf(blockSize)
	}
	for j := range w.jobs {
		if err := w.do(j, rbuf); err != nil {
			// Keep draining so the producer never blocks on a dead queue.
			for j := range w.jobs {
				w.release(j)
			}
			return err
		}
	}
	return nil
}

func (w *writer) do(j job, rbuf []byte) error {
	defer w.release(j)
	if w.delta {
		return w.doDelta(j, rbuf)
	}
	if j.zero {
		return w.zeroJob(j.off, j.n)
	}
	if err := w.t.writeAt(j.buf, j.off); err != nil {
		return err
	}
	w.written.Add(int64(len(j.buf)))
	if w.verify {
		w.record(extent{off: j.off, n: int64(len(j.buf)), sum: sha256.Sum256(j.buf)})
	}
	return nil
}

// zeroJob zeroes n bytes at off, in slices, so that a cancel is noticed
// within a second even where the kernel has to write the zeros itself (a
// USB stick without WRITE ZEROES manages some 30 MB/s).
func (w *writer) zeroJob(off, n int64) error {
	for o, end := off, off+n; o < end; {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		k := min(end-o, zeroSlice)
		if err := w.t.zeroRange(o, k); err != nil {
			return err
		}
		w.zeroed.Add(k)
		o += k
	}
	w.record(extent{off: off, n: n, zero: true})
	return nil
}

// flushBehind starts a flush of the target while writes go on; a failed flush
// fails the flash like a failed write. Flash calls it once all the data is
// sent, so that the device writes back while the digest is finished. (Flushing
// every 64 MiB as well, as bmaptool flushes every few MiB, made raw faster and
// qcow2 slower on the bench's virtual disk before this flush existed, and both
// slower after: bench/README.md.)
func (w *writer) flushBehind() { w.g.Go(w.t.sync) }

func (w *writer) release(j job) {
	if j.release != nil {
		j.release()
	}
}

func (w *writer) record(e extent) {
	if !w.verify {
		return
	}
	w.mu.Lock()
	w.extents = append(w.extents, e)
	w.mu.Unlock()
}

func (w *writer) send(j job) error {
	select {
	case w.jobs <- j:
		return nil
	case <-w.ctx.Done():
		w.release(j)
		return w.ctx.Err()
	}
}

// fit notes that the image reaches end and returns how much of [off, end) fits
// on the target: all of it, or on a device that the image overruns, what lies
// before the device's end, with an *OverrunError.
func (w *writer) fit(off, end int64) (int64, error) {
	if w.t.isDev && end > w.t.size {
		w.end = max(w.end, w.t.size)
		return max(0, w.t.size-off), &OverrunError{Target: w.t.path, TargetSize: w.t.size, AtLeast: end}
	}
	w.end = max(w.end, end)
	return end - off, nil
}

// block takes a pool block holding n image bytes at off (a multiple of
// blockSize) and gives it back to the pool when written.
func (w *writer) block(off int64, blk []byte, n int) error {
	if k, err := w.fit(off, off+int64(n)); err != nil {
		// The part that fits is written, so that the target holds the image
		// up to its end, as the error says.
		if k > 0 {
			if werr := w.block(off, blk, int(k)); werr != nil {
				return werr
			}
		} else {
			w.pool.put(blk)
		}
		return err
	}
	p := blk[:n]
	if isZero(p) {
		w.pool.put(blk)
		return w.zero(off, int64(n))
	}
	if off < headSize {
		k := copy(w.head[off:], p)
		if k == n {
			w.pool.put(blk)
			return nil
		}
		return w.write(off+int64(k), p[k:], w.putter(blk))
	}
	return w.write(off, p, w.putter(blk))
}

// putter returns the release of a pool block.
func (w *writer) putter(blk []byte) func() { return func() { w.pool.put(blk) } }

// write submits p at off (p's address is congruent to off modulo 4096): the
// aligned middle as a direct write, unaligned edges as pieces for the end;
// release, if set, is called once p is no longer needed.
func (w *writer) write(off int64, p []byte, release func()) error {
	a := w.t.align
	end := off + int64(len(p))
	lo, hi := alignDown(off+a-1, a), alignDown(end, a)
	if lo >= hi {
		w.deferPiece(off, p)
		if release != nil {
			release()
		}
		return nil
	}
	if lo > off {
		w.deferPiece(off, p[:lo-off])
	}
	if hi < end {
		w.deferPiece(hi, p[hi-off:])
	}
	return w.send(job{off: lo, buf: p[lo-off : hi-off], release: release})
}

func (w *writer) deferPiece(off int64, p []byte) {
	w.pieces = append(w.pieces, piece{off: off, p: append([]byte(nil), p...), n: int64(len(p))})
}

// zero notes that [off, off+n) is zero; adjacent ranges are merged into one
// zeroing call.
func (w *writer) zero(off, n int64) error {
	if end := off + n; off < headSize {
		// The head buffer starts zeroed.
		off = min(end, headSize)
		n = end - off
	}
	if n <= 0 {
		return nil
	}
	if w.zLen > 0 && w.zOff+w.zLen == off {
		w.zLen += n
		return nil
	}
	if err := w.flushZero(); err != nil {
		return err
	}
	w.zOff, w.zLen = off, n
	return nil
}

func (w *writer) flushZero() error {
	off, n := w.zOff, w.zLen
	w.zLen = 0
	if n == 0 {
		return nil
	}
	a := w.t.align
	lo, hi := alignDown(off+a-1, a), alignDown(off+n, a)
	if lo >= hi {
		lo, hi = off, off
	}
	if w.t.isDev || w.t.keep {
		// Unaligned edges of a zero range are written as zeros at the end.
		if lo > off {
			w.pieces = append(w.pieces, piece{off: off, n: lo - off})
		}
		if hi < off+n {
			w.pieces = append(w.pieces, piece{off: hi, n: off + n - hi})
		}
	}
	for ; hi > lo && w.delta && hi-lo > deltaZeroJob; lo += deltaZeroJob {
		// A delta reads a zero range: in parts, for every writing goroutine.
		if err := w.send(job{off: lo, n: deltaZeroJob, zero: true}); err != nil {
			return err
		}
	}
	if hi > lo {
		return w.send(job{off: lo, n: hi - lo, zero: true})
	}
	return nil
}

// Data implements blockSink: contiguous pieces are gathered into pool blocks
// before they are written.
func (w *writer) Data(off int64, p []byte) error {
	w.in.Lock()
	defer w.in.Unlock()
	return w.data(off, p)
}

func (w *writer) data(off int64, p []byte) error {
	if k, err := w.fit(off, off+int64(len(p))); err != nil {
		if k > 0 {
			if werr := w.data(off, p[:k]); werr != nil {
				return werr
			}
		}
		return err
	}
	if off < headSize {
		k := copy(w.head[off:], p)
		off, p = off+int64(k), p[k:]
	}
	for len(p) > 0 {
		if w.acc == nil || off != w.accHi || off-w.accBase >= blockSize {
			if err := w.flushAcc(); err != nil {
				return err
			}
			b, err := w.pool.get(w.ctx)
			if err != nil {
				return err
			}
			w.acc, w.accBase, w.accLo, w.accHi = b, alignDown(off, 4096), off, off
		}
		k := copy(w.acc[off-w.accBase:], p)
		off, p = off+int64(k), p[k:]
		w.accHi = off
	}
	return nil
}

func (w *writer) flushAcc() error {
	if w.acc == nil {
		return nil
	}
	b, lo, hi := w.acc, w.accLo, w.accHi
	w.acc = nil
	p := b[lo-w.accBase : hi-w.accBase]
	if isZero(p) {
		w.pool.put(b)
		return w.zero(lo, hi-lo)
	}
	return w.write(lo, p, w.putter(b))
}

// Take implements blockSink: p is written from where it is when its address
// is congruent to off modulo 4096 (a buffer aligned to 4096, filled from an
// aligned offset) and it lies past the held-back first MiB and within the
// target; otherwise it is copied, as Data copies. (The raw path's copy into
// pool blocks was a third of bty's CPU time on a tmpfs-backed loop device.)
func (w *writer) Take(off int64, p []byte, release func()) error {
	w.in.Lock()
	defer w.in.Unlock()
	end := off + int64(len(p))
	if len(p) == 0 || off < headSize || uintptr(unsafe.Pointer(&p[0]))%4096 != uintptr(off%4096) || w.t.isDev && end > w.t.size {
		defer release()
		return w.data(off, p)
	}
	w.end = max(w.end, end)
	if isZero(p) {
		release()
		return w.zero(off, int64(len(p)))
	}
	return w.write(off, p, release)
}

// Zero implements blockSink.
func (w *writer) Zero(off, n int64) error {
	w.in.Lock()
	defer w.in.Unlock()
	if k, err := w.fit(off, off+n); err != nil {
		if k > 0 {
			if werr := w.zero(off, k); werr != nil {
				return werr
			}
		}
		return err
	}
	return w.zero(off, n)
}

// ReadFrom implements blockSink: it reads the image from r, from its start to
// io.EOF, into pool blocks and hands each to the writing goroutines as it is
// filled. A decoder's io.ErrUnexpectedEOF (a truncated stream) is returned as
// it is.
func (w *writer) ReadFrom(r io.Reader) (int64, error) {
	w.in.Lock()
	defer w.in.Unlock()
	for off := int64(0); ; {
		if err := w.ctx.Err(); err != nil {
			return off, err
		}
		b, err := w.pool.get(w.ctx)
		if err != nil {
			return off, err
		}
		n, err := fill(r, b)
		if n > 0 {
			if werr := w.block(off, b, n); werr != nil {
				return off, werr
			}
			off += int64(n)
		} else {
			w.pool.put(b)
		}
		if err == io.EOF {
			return off, nil
		}
		if err != nil {
			return off, err
		}
	}
}

// fill reads until b is full or the reader fails; unlike io.ReadFull it passes a
// decoder's io.ErrUnexpectedEOF (a truncated stream) through unchanged, and
// returns io.EOF for a clean end whether or not b got bytes.
func fill(r io.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := r.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// drain submits what is pending and waits for every write in flight.
func (w *writer) drain() error {
	w.in.Lock()
	defer w.in.Unlock()
	err := w.flushAcc()
	if err == nil {
		err = w.flushZero()
	}
	close(w.jobs)
	if werr := w.g.Wait(); werr != nil {
		return werr
	}
	return err
}

// writePieces writes the unaligned fragments through the page cache, after every
// direct write has completed.
func (w *writer) writePieces() error {
	for _, pc := range w.pieces {
		p := pc.p
		if p == nil {
			p = make([]byte, pc.n)
		}
		if w.delta {
			if err := w.pieceDelta(pc.off, p, pc.p == nil); err != nil {
				return err
			}
			continue
		}
		if err := w.t.writeBuffered(p, pc.off); err != nil {
			return err
		}
		if pc.p == nil {
			w.zeroed.Add(pc.n)
			w.record(extent{off: pc.off, n: pc.n, zero: true})
		} else {
			w.written.Add(pc.n)
			w.record(extent{off: pc.off, n: pc.n, sum: sha256.Sum256(p)})
		}
	}
	return nil
}

// writeHead writes the held-back first MiB (or the whole image, if smaller).
func (w *writer) writeHead() error {
	n := min(w.end, headSize)
	if w.delta && !w.wiped.Load() {
		// Nothing else changed: the head is written only if it differs.
		same, err := w.inPlace(0, w.head[:n])
		if same || err != nil {
			w.record(extent{off: 0, n: n, sum: sha256.Sum256(w.head[:n])})
			return err
		}
	}
	a := w.t.align
	aligned := alignDown(n, a)
	if !w.t.direct {
		aligned = 0
	}
	if aligned > 0 {
		if err := w.t.writeAt(w.head[:aligned], 0); err != nil {
			return err
		}
	}
	if aligned < n {
		if err := w.t.writeBuffered(w.head[aligned:n], aligned); err != nil {
			return err
		}
	}
	w.written.Add(n)
	w.record(extent{off: 0, n: n, sum: sha256.Sum256(w.head[:n])})
	return nil
}
