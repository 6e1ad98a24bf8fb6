package flash

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"bty/category"
)

// Options tune a flash. The zero value flashes without digest check, read-back or
// progress reports.
type Options struct {
	// SHA256 is the expected digest of the source bytes (lower-case hex); empty
	// means not checked (the digest is still computed and reported).
	SHA256 string
	// Size is the expected length of the source bytes; zero means unknown.
	Size int64
	// FormatHint is a format name from a catalog ("img.xz", "qcow2"...); empty
	// means the source name's suffix is the hint. The bytes decide; a hint that
	// disagrees is reported in Result.Warnings.
	FormatHint string
	// Verify reads every written range back and compares it.
	Verify bool
	// Progress, if set, is called at most every ProgressInterval (zero: 200
	// ms), from another goroutine, and at the start (PhaseOpening) and each
	// phase change.
	Progress         func(Progress)
	ProgressInterval time.Duration
	// Retry is the resume policy for sources that break mid-stream.
	Retry Retry
	// Blocks is the number of 1 MiB buffers in the pool; zero means 16.
	Blocks int
}

// Result describes a flash. Flash returns one also when it fails, with what
// was known when it stopped: the format, the bytes read, written and zeroed,
// the time taken, the digest of the source when it was read to its end, and
// what the target holds now.
type Result struct {
	Format       Format // from the magic bytes
	FormatHint   Format // from the name or catalog, "" when none
	SHA256       string // of the source bytes as delivered; "" if not read to the end
	SourceBytes  int64  // length of the source bytes (read so far, on failure)
	ImageSize    int64  // decoded image size; 0 when unknown
	Written      int64  // bytes written
	Zeroed       int64  // bytes zeroed without writing data (punched, BLKZEROOUT, holes)
	Duration     time.Duration
	Verified     bool        // read back and compared
	GPTRelocated bool        // the backup GPT was moved to the end of the disk
	Retries      int         // times the source was reopened after a failure
	Warnings     []string    // format disagreement, busy partition table re-read
	Target       TargetState // what the target holds now
}

// TargetState is what a target holds when Flash returns.
type TargetState string

const (
	// TargetUntouched: nothing was written (refused or failed before writing).
	TargetUntouched TargetState = "untouched"
	// TargetNoPartitionTable: the target was wiped or written in part, and its
	// first MiB is zero: it cannot boot until it is flashed again.
	TargetNoPartitionTable TargetState = "no_partition_table"
	// TargetWritten: the whole image, first MiB included, is on the target
	// (the flash may still fail after that, e.g. the read-back).
	TargetWritten TargetState = "written"
)

// TargetNote says in words what the target at path holds after a failed
// Flash that returned r (nil: Flash did not run), to end its message with.
func (r *Result) TargetNote(path string) string {
	state := TargetUntouched
	if r != nil {
		state = r.Target
	}
	switch state {
	case TargetUntouched:
		return path + " is untouched"
	case TargetNoPartitionTable:
		return fmt.Sprintf("%s was left without a partition table (%d bytes written, %d zeroed): it will not boot until it is flashed again",
			path, r.Written, r.Zeroed)
	}
	return path + " holds the whole image, but the flash did not complete: flash it again"
}

// Flash writes the image from src to the block device or regular file at
// target, in the crash-safe order described in the package comment. It always
// returns a Result, partial when err is not nil.
func Flash(ctx context.Context, src Source, target string, opt Options) (res *Result, err error) {
	start := time.Now()
	res = &Result{Target: TargetUntouched}
	rr := newResumeReader(ctx, src, opt.Size, opt.SHA256, opt.Retry)
	defer rr.Close()
	var w atomic.Pointer[writer]
	var verified atomic.Int64
	var imageSize atomic.Int64
	imageSize.Store(-1)
	rep := newReporter(opt.Progress, opt.ProgressInterval, func() Progress {
		p := Progress{SourceBytes: rr.count.Load(), SourceTotal: rr.total.Load(), ImageSize: imageSize.Load(), Verified: verified.Load()}
		if w := w.Load(); w != nil {
			p.Written, p.Zeroed = w.written.Load(), w.zeroed.Load()
		}
		return p
	})
	defer rep.close()
	defer func() {
		if err == nil {
			return
		}
		var ce *CancelError
		if errors.Is(err, context.Canceled) && !errors.As(err, &ce) {
			err = &CancelError{Cause: context.Cause(ctx)}
		}
		// What is known of a flash that failed.
		res.SourceBytes = rr.count.Load()
		res.SHA256 = rr.delivered()
		if wr := w.Load(); wr != nil {
			res.Written, res.Zeroed = wr.written.Load(), wr.zeroed.Load()
		}
		res.Duration = time.Since(start)
	}()

	// Open the source and decide the format before touching the target, so a
	// missing, corrupt or tar source leaves the target as it was. The source is
	// read and hashed a few MiB ahead, in its own goroutine.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pf := newPrefetcher(ctx, rr)
	br := bufio.NewReaderSize(pf, 64<<10)
	head, err := br.Peek(sniffLen)
	if err != nil && err != io.EOF {
		return res, classify(ctx, rr, err, "")
	}
	if len(head) == 0 {
		if err := rr.failed(); err != nil {
			return res, err
		}
		return res, errEmpty(src)
	}
	p, info := inspect(ctx, src, head, rr.size, opt.FormatHint)
	res.Format, res.FormatHint = info.Format, info.FormatHint
	if res.FormatHint != "" && res.FormatHint != res.Format {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%s: the bytes are %s but the name says %s; writing it as %s", src.Name(), res.Format, res.FormatHint, res.Format))
	}
	ra := sourceReaderAt{ctx: ctx, src: src}

	var q *qcow2Image
	var blocks []xzBlock // set when xz blocks are decoded in parallel
	var bz *bzScanner    // set when bzip2 blocks are
	var dec *bufio.Reader
	var dhead []byte // the start of the decoded image, for the tar check
	switch {
	case p.format == Qcow2:
		if q, err = parseQcow2(ra, rr.size); err != nil {
			return res, classify(ctx, rr, err, p.format)
		}
		info.ImageSize, info.Exact = q.VirtualSize, true
	case p.format == Bzip2 && multiCore():
		bz = newBzScanner(br)
		if dhead, err = bz.head(); err != nil {
			return res, classify(ctx, rr, err, p.format)
		}
	default:
		if p.format == Xz {
			blocks = xzParallelBlocks(ra, rr.size)
		}
		in := io.Reader(br)
		if blocks != nil {
			// The workers read br; the tar check decodes the start of the
			// first block from the bytes already buffered.
			buffered, _ := br.Peek(br.Buffered())
			in = bytes.NewReader(buffered)
		}
		dec = br // raw
		if p.decode != nil {
			r, err := p.decode(in)
			if err != nil {
				return res, classify(ctx, rr, err, p.format)
			}
			dec = bufio.NewReaderSize(r, 64<<10)
		}
		if dhead, err = dec.Peek(sniffLen); err != nil && err != io.EOF && blocks == nil {
			return res, classify(ctx, rr, err, p.format)
		}
	}
	if isTar(dhead) {
		return res, fmt.Errorf("%w (%s)", ErrTarball, src.Name())
	}
	size := int64(-1) // the decoded size, when it is known exactly
	if info.Exact {
		size = info.ImageSize
		res.ImageSize = size
	}
	imageSize.Store(size)

	t, err := openTarget(target)
	if err != nil {
		return res, err
	}
	defer t.close()
	if t.sameFile(src.Name()) {
		return res, fmt.Errorf("%w: %s", ErrTargetIsSource, target)
	}
	// A lower bound is enough to know that the target is too small.
	if t.isDev && info.ImageSize > t.size {
		return res, fmt.Errorf("%w: %s, %s has %d", ErrTooLarge, info.sizeText(), target, t.size)
	}

	rep.setPhase(PhaseWriting)
	res.Target = TargetNoPartitionTable
	if err := t.prepare(); err != nil {
		return res, err
	}
	buffers := opt.Blocks
	if buffers <= 0 {
		buffers = 16
	}
	wr := newWriter(ctx, t, newPool(buffers), opt.Verify)
	w.Store(wr)
	switch {
	case q != nil:
		err = q.stream(br, wr)
	case blocks != nil:
		err = xzParallel(ctx, br, blocks, wr)
	case bz != nil:
		err = bzip2Parallel(ctx, bz, wr)
	case dec == br:
		err = copyRaw(ctx, br, pf, wr, size)
	default:
		err = copyBlocks(ctx, dec, wr)
	}
	if err == nil {
		// Read the source to its end: the length and digest checks run there.
		// The scout may still be hashing the last hole of a sparse image;
		// meanwhile the target writes back what it has.
		wr.flushBehind()
		_, err = io.Copy(io.Discard, br)
	}
	derr := wr.drain()
	switch {
	case ctx.Err() != nil:
		return res, ctx.Err()
	case derr != nil:
		return res, derr
	case err != nil:
		return res, classify(ctx, rr, err, p.format)
	}
	if err := rr.failed(); err != nil {
		return res, err
	}

	// The image is on the target but for its first MiB, and the source checked
	// out. Finish in an order that keeps the target unbootable until the end.
	res.ImageSize = wr.end
	imageSize.Store(wr.end) // known now, whatever the container said
	rep.setPhase(PhaseFinishing)
	if err := t.finishSize(wr.end); err != nil {
		return res, err
	}
	if err := wr.writePieces(); err != nil {
		return res, err
	}
	if t.isDev && t.size > wr.end {
		if backup, off, ok := relocateGPT(wr.head, t.align, t.size); ok {
			if err := t.writeAt(backup, off); err != nil {
				return res, err
			}
			res.GPTRelocated = true
		}
	}
	// Everything but the first MiB must be on the medium before the first MiB
	// is written: a device may write its cache back in any order, and a power
	// cut must not leave a partition table over missing data.
	if err := t.sync(); err != nil {
		return res, err
	}
	if err := wr.writeHead(); err != nil {
		return res, err
	}
	res.Target = TargetWritten
	if err := t.sync(); err != nil {
		return res, err
	}
	if err := t.rereadPartitions(); err != nil {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%v: the kernel still shows the old partitions until they are closed or the machine reboots", err))
	}
	if opt.Verify {
		rep.setPhase(PhaseVerifying)
		if err := wr.readBack(func(n int64) { verified.Add(n) }); err != nil {
			return res, err
		}
		res.Verified = true
	}
	res.SHA256 = rr.sum()
	res.SourceBytes = rr.off
	res.Written, res.Zeroed = wr.written.Load(), wr.zeroed.Load()
	res.Retries = rr.retries
	res.Duration = time.Since(start)
	rep.setPhase(PhaseDone)
	return res, nil
}

// copyRaw hands a raw image to the writer as it comes: the bytes br holds, then
// the prefetcher's chunks. A hole of a sparse source goes to the writer as a
// zero range without being read, copied or scanned. It returns once the size
// the source announced (if >= 0) is delivered, so that the target's flush
// starts while the end-of-source checks (the scout's digest of a final hole)
// still run; a source that goes on past it fails those checks.
func copyRaw(ctx context.Context, br *bufio.Reader, pf *prefetcher, w *writer, size int64) error {
	off := int64(br.Buffered())
	head, _ := br.Peek(int(off))
	if err := w.Data(0, head); err != nil {
		return err
	}
	br.Discard(int(off))
	for size < 0 || off < size {
		data, zeros, err := pf.next()
		switch {
		case err == io.EOF:
			return nil
		case err != nil:
			return err
		case zeros > 0:
			err = w.Zero(off, zeros)
			off += zeros
		default:
			err = w.Data(off, data)
			off += int64(len(data))
		}
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// copyBlocks reads the decoded stream into pool blocks and hands each to the
// writer at its offset.
func copyBlocks(ctx context.Context, r io.Reader, w *writer) error {
	for off := int64(0); ; {
		b, err := w.pool.get(w.ctx)
		if err != nil {
			return err
		}
		n, err := fill(r, b)
		if n > 0 {
			if werr := w.block(off, b, n); werr != nil {
				return werr
			}
			off += int64(n)
		} else {
			w.pool.put(b)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
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

func hintOf(hint, name string) Format {
	if hint != "" {
		return FormatFromName(hint)
	}
	return FormatFromName(name)
}

// classify turns a pipeline error into one of the package's categories. A
// failure of the source (cut, digest, length) explains whatever the decoder then
// said; an error the decoder raised on its own means corrupt data.
func classify(ctx context.Context, rr *resumeReader, err error, f Format) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if ferr := rr.failed(); ferr != nil {
		return ferr
	}
	var ioe *IOError
	if errors.Is(err, category.Integrity) || errors.Is(err, category.Refused) || errors.Is(err, ErrUnsupported) || errors.As(err, &ioe) {
		return err
	}
	if f == "" {
		return &IOError{Side: SideSource, Err: err}
	}
	return fmt.Errorf("%w: %s: %w", ErrCorrupt, f, err)
}
