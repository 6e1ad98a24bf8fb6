package flash

import (
	"bytes"
	"crypto/sha256"
)

// A delta (Options.Delta) is a flash onto a target that may hold most of the
// image already. The writer's goroutines read the target where each block
// would be written, through the same O_DIRECT descriptor, and write only the
// grains that differ; a zero range is zeroed only where the target is not
// zero. The crash-safe order stays, with one change: the target's ends are
// wiped (target.prepare) at the first difference rather than at the start,
// so that a target that holds the image already is not written at all, and
// one that differs is without a partition table from its first change until
// the image's first MiB is written last. The device's last MiB, which the
// wipe zeroes, is gathered in memory (writer.tail) and written at the end
// with the relocated backup GPT, as the held-back head is.
//
//	block from the decoder -> read the target there -> equal grains: skipped
//	                                                -> others: wipe once, write
//	first MiB, last MiB    -> in memory -> compared (written) at the end

const (
	// deltaGrain is the unit a delta compares and writes: a page, which
	// every logical sector size divides. A changed file in an ext4 image
	// changes whole 4 KiB blocks.
	deltaGrain = 4096
	// deltaZeroJob is the largest zero range one goroutine reads, so that a
	// large hole is read by all of them.
	deltaZeroJob = 8 * blockSize
	// deltaProbe: once this much of the target was compared and less than
	// an eighth of it was in place (a new disk, another image), the rest is
	// written as a full flash writes it, without reading the target first.
	deltaProbe = 64 << 20
)

// doDelta is do for a delta: the part of j in the device's last MiB goes to
// the tail, the rest is compared with the target.
func (w *writer) doDelta(j job, rbuf []byte) error {
	off, n := j.off, j.n
	if !j.zero {
		n = int64(len(j.buf))
	}
	if end := off + n; end > w.tailOff {
		lo := max(off, w.tailOff)
		if !j.zero {
			copy(w.tail[lo-w.tailOff:], j.buf[lo-off:])
		}
		n = lo - off
	}
	switch {
	case !j.zero && w.verify && n > 0:
		w.record(extent{off: off, n: n, sum: sha256.Sum256(j.buf[:n])})
	case j.zero && w.full.Load() && n > 0: // past the probe: zeroed as a full flash zeroes
		if err := w.wipe(); err != nil {
			return err
		}
		return w.zeroJob(off, n)
	}
	// A job is up to a prefetch buffer (the raw path's data) or a zero
	// range of any length: compare it a block at a time.
	for done := int64(0); done < n; {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		c := min(n-done, blockSize)
		p := zeroBlock[:c]
		if !j.zero {
			p = j.buf[done : done+c]
		}
		if err := w.patch(off+done, p, j.zero, rbuf); err != nil {
			return err
		}
		done += c
	}
	if j.zero && n > 0 {
		w.record(extent{off: off, n: n, zero: true})
	}
	return nil
}

// patch makes the target hold p at off (aligned, len(p) a multiple of the
// target's alignment, at most blockSize; zero: p is zeros): it reads what is
// there and writes (or zeroes) the grains that differ, wiping the target's
// ends before its first change.
func (w *writer) patch(off int64, p []byte, zero bool, rbuf []byte) error {
	if len(p) == 0 {
		return nil
	}
	if w.full.Load() {
		if err := w.wipe(); err != nil {
			return err
		}
		return w.put(off, p, zero)
	}
	got, err := w.readTarget(off, rbuf[:len(p)])
	if err != nil {
		return err
	}
	changed := int64(0)
	for i := 0; i < len(p); {
		if bytes.Equal(p[i:min(i+deltaGrain, len(p))], got[i:min(i+deltaGrain, len(p))]) {
			i += deltaGrain
			continue
		}
		k := i + deltaGrain
		for k < len(p) && !bytes.Equal(p[k:min(k+deltaGrain, len(p))], got[k:min(k+deltaGrain, len(p))]) {
			k += deltaGrain
		}
		k = min(k, len(p))
		if err := w.wipe(); err != nil {
			return err
		}
		if err := w.put(off+int64(i), p[i:k], zero); err != nil {
			return err
		}
		changed += int64(k - i)
		i = k
	}
	w.skipped.Add(int64(len(p)) - changed)
	m := w.matched.Add(int64(len(p)) - changed)
	if c := w.compared.Add(int64(len(p))); c >= deltaProbe && m < c/8 {
		w.full.Store(true)
	}
	return nil
}

// put writes p at off, or zeroes its range, and counts it.
func (w *writer) put(off int64, p []byte, zero bool) error {
	if zero {
		if err := w.t.zeroRange(off, int64(len(p))); err != nil {
			return err
		}
		w.zeroed.Add(int64(len(p)))
		return nil
	}
	if err := w.t.writeAt(p, off); err != nil {
		return err
	}
	w.written.Add(int64(len(p)))
	return nil
}

// readTarget reads len(b) bytes at off (aligned) into b; what lies past the
// end of a file target reads as zeros, as it will once the file is sized.
func (w *writer) readTarget(off int64, b []byte) ([]byte, error) {
	n, err := w.t.readAt(b, off)
	w.targetRead.Add(int64(n))
	if err != nil {
		return nil, err
	}
	clear(b[n:])
	return b, nil
}

// inPlace reports whether the target holds p at off (not aligned), and counts
// p as skipped if so.
func (w *writer) inPlace(off int64, p []byte) (bool, error) {
	a := w.t.align
	lo, hi := alignDown(off, a), alignDown(off+int64(len(p))+a-1, a)
	if w.t.isDev {
		hi = min(hi, w.t.size)
	}
	b, err := w.readTarget(lo, alignedBuf(int(hi-lo)))
	if err != nil || !bytes.Equal(b[off-lo:off-lo+int64(len(p))], p) {
		return false, err
	}
	w.skipped.Add(int64(len(p)))
	return true, nil
}

// pieceDelta is writePieces' step for a delta: a piece in the last MiB goes to
// the tail; another is written only if the target does not hold it.
func (w *writer) pieceDelta(off int64, p []byte, zero bool) error {
	if off >= w.tailOff {
		copy(w.tail[off-w.tailOff:], p)
		return nil
	}
	e := extent{off: off, n: int64(len(p)), zero: zero, sum: sha256.Sum256(p)}
	w.record(e)
	if same, err := w.inPlace(off, p); same || err != nil {
		return err
	}
	if err := w.wipe(); err != nil {
		return err
	}
	if err := w.t.writeBuffered(p, off); err != nil {
		return err
	}
	if zero {
		w.zeroed.Add(e.n)
	} else {
		w.written.Add(e.n)
	}
	return nil
}

// writeEnd writes p at off (aligned) after the stream, at the device's end:
// the relocated backup GPT. A delta puts it in the tail.
func (w *writer) writeEnd(p []byte, off int64) error {
	if w.tail == nil || off < w.tailOff {
		return w.t.writeAt(p, off)
	}
	copy(w.tail[off-w.tailOff:], p)
	return nil
}

// writeTail makes a delta's device end hold the tail: untouched if it does
// already and nothing else changed; else, its ends wiped, the tail's non-zero
// grains written over the zeros.
func (w *writer) writeTail() error {
	if w.tail == nil {
		return nil
	}
	p := w.tail
	w.record(extent{off: w.tailOff, n: int64(len(p)), sum: sha256.Sum256(p)})
	if !w.wiped.Load() {
		got, err := w.readTarget(w.tailOff, alignedBuf(len(p)))
		if err != nil {
			return err
		}
		if bytes.Equal(got, p) {
			w.skipped.Add(max(0, min(w.end, w.t.size)-w.tailOff))
			return nil
		}
		if err := w.wipe(); err != nil {
			return err
		}
	}
	for i := 0; i < len(p); i += deltaGrain {
		g := p[i:min(i+deltaGrain, len(p))]
		if isZero(g) {
			continue
		}
		if err := w.t.writeAt(g, w.tailOff+int64(i)); err != nil {
			return err
		}
		w.written.Add(int64(len(g)))
	}
	return nil
}
