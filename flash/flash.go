package flash

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"bty/category"
	"bty/format"
)

// Options tune a flash. The zero value flashes without digest check, read-back or
// progress reports.
type Options struct {
	// SHA256 is the expected digest of the source bytes (lower-case hex); empty
	// means not checked. The digest is then still computed and reported for
	// every format but raw, beside decoding, where it costs a fraction of it.
	// A raw image is not hashed without one (Result.SHA256Skipped): its sha256
	// covers every hole, and hashing a GiB takes as long as a fast disk takes
	// to write it, while a hole costs the target nothing.
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
	// Delta reads the target alongside the image and writes only what
	// differs (delta.go); the crash-safe order and the checks stay.
	Delta bool
	// Store, with Delta, is the image's block index and store: the blocks
	// the target lacks are fetched from it instead of reading the source
	// (indexed.go). nil: the source is read.
	Store BlockStore
}

// Result describes a flash. Flash returns one also when it fails, with what
// was known when it stopped: the format, the bytes read, written and zeroed,
// the time taken, the digest of the source when it was read to its end, and
// what the target holds now.
type Result struct {
	Format        format.Format // from the magic bytes
	FormatHint    format.Format // from the name or catalog, "" when none
	SHA256        string        // of the source bytes as delivered; "" if not read to the end, or skipped
	SHA256Skipped bool          // not hashed: a raw image with no expected digest (Options.SHA256 says why)
	SourceBytes   int64         // length of the source bytes (read so far, on failure)
	ImageSize     int64         // decoded image size; 0 when unknown
	Written       int64         // bytes written
	Zeroed        int64         // bytes zeroed without writing data (punched, BLKZEROOUT, holes)
	TargetRead    int64         // bytes read from the target to compare (Options.Delta)
	Skipped       int64         // image bytes the target held already (Options.Delta)
	Fetched       int64         // bytes fetched for the blocks the target lacked (Options.Store)
	FetchedBlocks int64         // blocks fetched (Options.Store)
	Duration      time.Duration
	Verified      bool        // read back and compared
	GPTRelocated  bool        // the backup GPT was moved to the end of the disk
	Retries       int         // times the source was reopened after a failure
	Warnings      []string    // format disagreement, busy partition table re-read
	Target        TargetState // what the target holds now
}

// Digest is the source's sha256 for people to read: SHA256, or "not
// computed" when it was skipped.
func (r *Result) Digest() string {
	if r.SHA256Skipped {
		return "not computed"
	}
	return r.SHA256
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
func Flash(ctx context.Context, src Source, target string, opt Options) (*Result, error) {
	f := newRun(ctx, src, opt)
	defer f.close()
	var err error
	if opt.Delta && opt.Store != nil {
		err = f.flashIndexed(target)
	} else {
		err = f.flash(target)
	}
	return f.res, f.failed(ctx, err)
}

// flash runs the pipeline in its order: open the source, probe its format and
// open the decoder, refuse a tar archive, open the target, stream the image
// onto it, finish. Everything before the target is opened leaves the target as
// it was when it fails.
func (f *flashRun) flash(target string) error {
	in, head, err := f.open()
	if err != nil {
		return err
	}
	dec, err := f.probe(in, head)
	if err != nil {
		return err
	}
	if err := f.refuseTar(dec); err != nil {
		return err
	}
	t, err := f.openTarget(target)
	if err != nil {
		return err
	}
	defer t.close()
	w, err := f.stream(t, in, dec)
	if err != nil {
		return err
	}
	return f.finish(t, w)
}

// flashRun is one Flash: the source being read, what is known so far, and the
// progress reports.
type flashRun struct {
	ctx    context.Context // cancelled when Flash returns
	cancel context.CancelFunc
	src    Source
	opt    Options
	start  time.Time
	res    *Result
	rr     *resumeReader
	rep    *reporter
	p      prober // the source's format
	info   Info   // what the container says of the image

	w             atomic.Pointer[writer] // once the target is open
	fetched       atomic.Int64           // Options.Store: bytes fetched
	fellBack      bool                   // Options.Store: the target was unlike the image, flashed in full
	fetchedBlocks atomic.Int64
	verified      atomic.Int64
	imageSize     atomic.Int64 // -1 until known
}

func newRun(ctx context.Context, src Source, opt Options) *flashRun {
	f := &flashRun{src: src, opt: opt, start: time.Now(), res: &Result{Target: TargetUntouched}}
	rs := src
	if opt.Delta && opt.Store != nil {
		rs = struct{ Source }{src} // never read: no scout
	}
	f.rr = newResumeReader(ctx, rs, opt.Size, opt.SHA256, opt.Retry)
	f.ctx, f.cancel = context.WithCancel(ctx)
	f.imageSize.Store(-1)
	f.rep = newReporter(opt.Progress, opt.ProgressInterval, func() Progress {
		p := Progress{SourceBytes: f.rr.count.Load() + f.fetched.Load(), SourceTotal: f.rr.total.Load(), ImageSize: f.imageSize.Load(), Verified: f.verified.Load()}
		if w := f.w.Load(); w != nil {
			p.Written, p.Zeroed, p.TargetRead, p.Skipped = w.written.Load(), w.zeroed.Load(), w.targetRead.Load(), w.skipped.Load()
		}
		return p
	})
	return f
}

func (f *flashRun) close() {
	f.cancel()
	f.rep.close()
	f.rr.Close()
}

// failed completes the Result of a flash that failed with what is known when
// it stopped, and words a cancel plainly.
func (f *flashRun) failed(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var ce *CancelError
	if errors.Is(err, context.Canceled) && !errors.As(err, &ce) {
		err = &CancelError{Cause: context.Cause(ctx)}
	}
	f.res.SourceBytes = f.rr.count.Load() + f.fetched.Load()
	f.res.SHA256 = f.rr.delivered()
	f.res.Fetched, f.res.FetchedBlocks = f.fetched.Load(), f.fetchedBlocks.Load()
	if w := f.w.Load(); w != nil {
		f.res.Written, f.res.Zeroed, f.res.TargetRead, f.res.Skipped = w.written.Load(), w.zeroed.Load(), w.targetRead.Load(), w.skipped.Load()
		if f.res.Target == TargetUntouched && w.wiped.Load() {
			f.res.Target = TargetNoPartitionTable
		}
	}
	f.res.Duration = time.Since(f.start)
	return err
}

// open starts reading the source, a few MiB ahead and hashed, in a goroutine
// of its own, and returns its first bytes for the probers.
func (f *flashRun) open() (*input, []byte, error) {
	in := &input{pf: newPrefetcher(f.ctx, f.rr)}
	head, err := in.peek(sniffLen)
	if err != nil && err != io.EOF {
		return nil, nil, f.classify(err, "")
	}
	if len(head) == 0 {
		if err := f.rr.failed(); err != nil {
			return nil, nil, err
		}
		return nil, nil, errEmpty(f.src)
	}
	return in, head, nil
}

// probe decides the format from the first bytes, reads the decoded size where
// the container records it, and opens the format's decoder.
func (f *flashRun) probe(in *input, head []byte) (decoder, error) {
	f.p, f.info = inspect(f.ctx, f.src, head, f.rr.size, f.opt.FormatHint)
	f.res.Format, f.res.FormatHint = f.info.Format, f.info.FormatHint
	f.res.SHA256Skipped = !f.rr.hashFor(f.p.format)
	if f.res.FormatHint != "" && f.res.FormatHint != f.res.Format {
		f.res.Warnings = append(f.res.Warnings, fmt.Sprintf("%s: the bytes are %s but the name says %s; writing it as %s", f.src.Name(), f.res.Format, f.res.FormatHint, f.res.Format))
	}
	dec, err := f.p.open(opened{in: in, ra: sourceReaderAt{ctx: f.ctx, src: f.src}, size: f.rr.size})
	if err != nil {
		return nil, f.classify(err, f.p.format)
	}
	return dec, nil
}

// refuseTar decodes the start of the image and refuses a tar archive.
func (f *flashRun) refuseTar(dec decoder) error {
	head, err := dec.head()
	if err != nil {
		return f.classify(err, f.p.format)
	}
	if isTar(head) {
		return fmt.Errorf("%w (%s)", ErrTarball, f.src.Name())
	}
	if f.info.Exact {
		f.res.ImageSize = f.info.ImageSize
		f.imageSize.Store(f.info.ImageSize)
	}
	return nil
}

// openTarget opens the target and refuses it if it is the source itself or,
// a device, too small for what the container says of the image (a lower
// bound is enough for that).
func (f *flashRun) openTarget(path string) (*target, error) {
	t, err := openTarget(path)
	if err != nil {
		return nil, err
	}
	t.keep = f.opt.Delta
	if t.sameFile(f.src.Name()) {
		t.close()
		return nil, fmt.Errorf("%w: %s", ErrTargetIsSource, path)
	}
	if t.isDev && f.info.ImageSize > t.size {
		t.close()
		return nil, fmt.Errorf("%w: %s, %s has %d", ErrTooLarge, f.info.sizeText(), path, t.size)
	}
	return t, nil
}

// stream wipes what could boot on the target and writes the image onto it but
// for its first MiB, which the writer holds back. It returns once the source
// was read to its end and checked out, and every write is done.
func (f *flashRun) stream(t *target, in *input, dec decoder) (*writer, error) {
	f.rep.setPhase(PhaseWriting)
	buffers := f.opt.Blocks
	if buffers <= 0 {
		buffers = 16
	}
	w := newWriter(f.ctx, t, newPool(buffers), f.opt.Verify, f.opt.Delta)
	f.w.Store(w)
	if !f.opt.Delta {
		// A delta wipes on its first difference (writer.wipe).
		f.res.Target = TargetNoPartitionTable
		if err := w.wipe(); err != nil {
			return nil, err
		}
	}
	err := dec.stream(f.ctx, w)
	if err == nil {
		// Read the source to its end: the length and digest checks run there.
		// The scout may still be hashing the last hole of a sparse image;
		// meanwhile the target writes back what it has.
		w.flushBehind()
		err = in.drain()
	}
	derr := w.drain()
	switch {
	case f.ctx.Err() != nil:
		return nil, f.ctx.Err()
	case derr != nil:
		return nil, derr
	case err != nil:
		return nil, f.classify(err, f.p.format)
	}
	if err := f.rr.failed(); err != nil {
		return nil, err
	}
	return w, nil
}

// finish completes a target that holds the image but for its first MiB, from
// a source that checked out, in an order that keeps it unbootable until the
// end: the unaligned pieces, the backup GPT moved to the end of a larger disk,
// a flush, the first MiB, a flush; then the partition table re-read and, with
// Options.Verify, the read-back.
func (f *flashRun) finish(t *target, w *writer) error {
	res := f.res
	res.ImageSize = w.end
	f.imageSize.Store(w.end) // known now, whatever the container said
	f.rep.setPhase(PhaseFinishing)
	if err := t.finishSize(w.end); err != nil {
		return err
	}
	if err := w.writePieces(); err != nil {
		return err
	}
	if t.isDev && t.size > w.end {
		if backup, off, ok := relocateGPT(w.head, t.align, t.size); ok {
			if err := w.writeEnd(backup, off); err != nil {
				return err
			}
			res.GPTRelocated = true
		}
	}
	if err := w.writeTail(); err != nil {
		return err
	}
	// Everything but the first MiB must be on the medium before the first MiB
	// is written: a device may write its cache back in any order, and a power
	// cut must not leave a partition table over missing data.
	if err := t.sync(); err != nil {
		return err
	}
	if err := w.writeHead(); err != nil {
		return err
	}
	res.Target = TargetWritten
	if err := t.sync(); err != nil {
		return err
	}
	if err := t.rereadPartitions(); err != nil {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%v: the kernel still shows the old partitions until they are closed or the machine reboots", err))
	}
	if f.opt.Verify {
		f.rep.setPhase(PhaseVerifying)
		if err := w.readBack(func(n int64) { f.verified.Add(n) }); err != nil {
			return err
		}
		res.Verified = true
	}
	res.SHA256 = f.rr.sum()
	res.SourceBytes = f.rr.off
	if f.opt.Delta && f.opt.Store != nil {
		res.SHA256, res.SourceBytes = indexDigest(f.opt.Store.Index()), f.fetched.Load()
		res.Fetched, res.FetchedBlocks = f.fetched.Load(), f.fetchedBlocks.Load()
	}
	if f.fellBack { // all that was downloaded: the blocks, then the image
		res.Fetched, res.FetchedBlocks = f.fetched.Load()+f.rr.off, f.fetchedBlocks.Load()
	}
	res.Written, res.Zeroed, res.TargetRead, res.Skipped = w.written.Load(), w.zeroed.Load(), w.targetRead.Load(), w.skipped.Load()
	res.Retries = f.rr.retries
	res.Duration = time.Since(f.start)
	f.rep.setPhase(PhaseDone)
	return nil
}

func hintOf(hint, name string) format.Format {
	if hint != "" {
		return format.FromName(hint)
	}
	return format.FromName(name)
}

// classify turns a pipeline error into one of the categories. A failure of
// the source (cut, digest, length) explains whatever the decoder then said;
// an error the decoder raised on its own means corrupt data.
func (f *flashRun) classify(err error, fm format.Format) error {
	if f.ctx.Err() != nil {
		return f.ctx.Err()
	}
	if ferr := f.rr.failed(); ferr != nil {
		return ferr
	}
	var ioe *IOError
	if errors.Is(err, category.ErrIntegrity) || errors.Is(err, category.ErrRefused) || errors.Is(err, ErrUnsupported) || errors.As(err, &ioe) {
		return err
	}
	if fm == "" {
		return &IOError{Side: SideSource, Err: err}
	}
	return fmt.Errorf("%w: %s: %w", ErrCorrupt, fm, err)
}
