package flash

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"bty/category"
	"bty/format"
)

// Source is where the image bytes come from: a file, an HTTP URL, a registry blob.
//
// Like io.Copy with io.WriterTo, Flash looks for optional behaviours: a source
// that is worth reading twice (Rereadable), readers that skip the holes of a
// sparse file (HoleSkipper), errors that retrying cannot fix (PermanentError).
// A source that wraps another (to slow it, to count it) must forward each of
// them, or the flash silently does without.
type Source interface {
	// Name is the file name or URL of the bytes; its suffix is a format hint.
	// For a local file it is the file's path (Flash refuses to write a file
	// target onto it).
	Name() string
	// Open returns the bytes from offset off to the end, and the total size of the
	// source (-1 when unknown). Errors that are a PermanentError are not
	// retried; any other error from Open or from reading is retried by reopening
	// at the offset reached.
	Open(ctx context.Context, off int64) (rc io.ReadCloser, size int64, err error)
}

// Rereadable is implemented by sources that are cheap to read twice and gain
// from it: a sparse file on a local disk. When a digest is expected, Flash
// hashes such a source in a second reader, the scout, that runs ahead of the
// one feeding the target (scout.go says why); without one it reads it once.
// Rereadable reports what was decided when the source was made; it does not
// look at the file again.
type Rereadable interface {
	Source
	Rereadable() bool
}

// HoleSkipper is implemented by the readers that a Source's Open returns for a
// sparse file: SkipHole moves past the hole at the current offset, if any, and
// returns its length (0: data here, or the reader cannot tell). Flash hands a
// hole to the target as a zero range without reading, copying or hashing it
// byte by byte.
type HoleSkipper interface {
	io.Reader
	SkipHole() int64
}

// PermanentError is implemented by source errors that retrying cannot fix
// (not found, access denied, the content changed between attempts). Every
// other source error is retried with backoff.
type PermanentError interface {
	error
	Permanent() bool
}

func isPermanent(err error) bool {
	var p PermanentError
	return errors.As(err, &p) && p.Permanent()
}

// Retry is the resume policy for sources that break mid-stream.
type Retry struct {
	// Attempts is how many times in a row a source may fail without delivering a
	// byte before the flash gives up. Zero means 6.
	Attempts int
	// Backoff is the wait before the first retry; it doubles up to 8 s. Zero means
	// 250 ms.
	Backoff time.Duration
}

func (r Retry) attempts() int {
	if r.Attempts > 0 {
		return r.Attempts
	}
	return 6
}

func (r Retry) backoff() time.Duration {
	if r.Backoff > 0 {
		return r.Backoff
	}
	return 250 * time.Millisecond
}

// resumeReader reads a Source from start to end, reopening it at the offset
// reached after a failure, and hashes and counts the bytes as delivered. At the end
// of the stream it checks the length against the size the source announced (and
// the expected size, if any) and the digest against the expected one, and returns
// ErrLengthMismatch or ErrDigestMismatch instead of io.EOF.
//
// Without an expected digest, whether it hashes at all is decided once the
// format is known (hashFor): a raw image is not hashed (its holes would cost
// more to hash than to write), any other format is, beside decoding.
type resumeReader struct {
	ctx     context.Context
	src     Source
	retry   Retry
	rc      io.ReadCloser
	off     int64
	size    int64 // announced by the source, -1 unknown
	want    int64 // expected by the caller, 0 unknown
	digest  string
	h       hash.Hash
	hashing atomic.Int32 // hashUndecided, hashOn or hashOff
	check   *checker     // set when a scout hashes the source (a Rereadable one)
	scouted string       // the scout's digest, at the end
	mu      sync.Mutex   // guards err and actual, which failed reads from other goroutines
	err     error        // sticky: the first error that ended the stream, or io.EOF
	actual  string       // the digest, once the stream was read to its announced end
	retries int          // total reopenings, for the result
	count   atomic.Int64 // r.off, readable by the progress reporter
	total   atomic.Int64 // r.size, likewise
}

// The states of resumeReader.hashing. Until the format is known, the bytes
// are hashed and holes are read as zeros (the first few MiB at most, the
// prefetcher's lead): a hole skipped then would be owed to a hash that may
// yet be wanted.
const (
	hashUndecided int32 = iota
	hashOn
	hashOff
)

func newResumeReader(ctx context.Context, src Source, wantSize int64, wantDigest string, retry Retry) *resumeReader {
	r := &resumeReader{ctx: ctx, src: src, retry: retry, size: -1, want: wantSize, digest: wantDigest, h: sha256.New()}
	r.total.Store(-1)
	if wantDigest != "" {
		r.hashing.Store(hashOn)
		if rs, ok := src.(Rereadable); ok && rs.Rereadable() {
			r.check = newChecker(ctx, newScout(ctx, src), src.Name())
		}
	}
	return r
}

// hashFor decides, once the format is known, whether the source is hashed
// when no digest is expected: not for a raw image, whose sha256 would cover
// its holes and cost more than writing it (hashing a GiB takes the time a
// fast disk takes to write it; a hole costs the target nothing), yes for any
// other format, where hashing the compressed bytes runs beside decoding and
// costs a fraction of it. It reports whether the source is hashed. With an
// expected digest it is always hashed.
func (r *resumeReader) hashFor(fm format.Format) bool {
	if fm == format.Raw {
		r.hashing.CompareAndSwap(hashUndecided, hashOff)
	} else {
		r.hashing.CompareAndSwap(hashUndecided, hashOn)
	}
	return r.hashing.Load() == hashOn
}

// open opens the source at the current offset, retrying failures with backoff.
func (r *resumeReader) open() error {
	wait := r.retry.backoff()
	var last error
	for attempt := 0; attempt < r.retry.attempts(); attempt++ {
		if attempt > 0 {
			r.retries++
			t := time.NewTimer(wait)
			select {
			case <-r.ctx.Done():
				t.Stop()
				return r.ctx.Err()
			case <-t.C:
			}
			wait = min(wait*2, 8*time.Second)
		}
		rc, size, err := r.src.Open(r.ctx, r.off)
		if err == nil {
			if size >= 0 {
				if r.size >= 0 && size != r.size {
					rc.Close()
					return &IOError{Side: SideSource, Err: fmt.Errorf("%s: size changed from %d to %d bytes between attempts", r.src.Name(), r.size, size)}
				}
				r.size = size
				r.total.Store(size)
			}
			r.rc = rc
			return nil
		}
		if r.ctx.Err() != nil {
			return r.ctx.Err()
		}
		last = err
		if isPermanent(err) {
			break
		}
	}
	return &IOError{Side: SideSource, Err: last}
}

func (r *resumeReader) Read(p []byte) (int, error) {
	if err := r.stopped(); err != nil {
		return 0, err
	}
	failures := 0
	for {
		if r.rc == nil {
			if err := r.open(); err != nil {
				return 0, r.end(err)
			}
		}
		n, err := r.rc.Read(p)
		if n > 0 {
			if r.check != nil {
				if err := r.check.write(p[:n]); err != nil {
					return 0, r.end(err)
				}
			} else if r.hashing.Load() != hashOff {
				r.h.Write(p[:n])
			}
			r.off += int64(n)
			r.count.Store(r.off)
			return n, nil
		}
		if err == nil {
			continue
		}
		r.rc.Close()
		r.rc = nil
		if r.ctx.Err() != nil {
			return 0, r.end(r.ctx.Err())
		}
		if err == io.EOF && (r.size < 0 || r.off >= r.size) {
			return 0, r.end(r.finish())
		}
		if err == io.EOF {
			err = fmt.Errorf("%w: %s ended at byte %d of %d", ErrLengthMismatch, r.src.Name(), r.off, r.size)
		}
		// A cut mid-stream: reopen at r.off. A source that keeps ending early
		// is truncated (an integrity failure), not unavailable.
		failures++
		if failures >= r.retry.attempts() || isPermanent(err) {
			if !errors.Is(err, category.ErrIntegrity) {
				err = &IOError{Side: SideSource, Err: err}
			}
			return 0, r.end(err)
		}
	}
}

// skipHole moves past a hole at the current offset of a sparse source, counting
// and hashing (or checking) it like zeros read, and returns its length; 0 when
// the source has no hole there or cannot tell, or while hashing is undecided.
func (r *resumeReader) skipHole() (int64, error) {
	hs, ok := r.rc.(HoleSkipper)
	mode := r.hashing.Load()
	if !ok || mode == hashUndecided {
		return 0, nil
	}
	n := hs.SkipHole()
	if n == 0 {
		return 0, nil
	}
	switch {
	case r.check != nil:
		if err := r.check.zeros(n); err != nil {
			return 0, r.end(err)
		}
	case mode == hashOn:
		hashZeros(r.h, n)
	}
	r.off += n
	r.count.Store(r.off)
	return n, nil
}

// finish runs the end-of-stream checks.
func (r *resumeReader) finish() error {
	if r.want > 0 && r.off != r.want {
		return fmt.Errorf("%w: %s delivered %d bytes, expected %d", ErrLengthMismatch, r.src.Name(), r.off, r.want)
	}
	if r.size >= 0 && r.off != r.size {
		return fmt.Errorf("%w: %s delivered %d bytes, announced %d", ErrLengthMismatch, r.src.Name(), r.off, r.size)
	}
	if r.check != nil {
		digest, err := r.check.finish(r.off)
		if err != nil {
			return err
		}
		r.scouted = digest
	}
	r.mu.Lock()
	r.actual = r.sum()
	r.mu.Unlock()
	if r.digest != "" && r.sum() != r.digest {
		return fmt.Errorf("%w: %s has sha256 %s, expected %s", ErrDigestMismatch, r.src.Name(), r.sum(), r.digest)
	}
	return io.EOF
}

// sum is the digest of what was delivered; "" when the source was not hashed.
func (r *resumeReader) sum() string {
	switch {
	case r.check != nil:
		return r.scouted
	case r.hashing.Load() == hashOff:
		return ""
	}
	return hex.EncodeToString(r.h.Sum(nil))
}

// delivered is the digest of the source once it was read to its end with the
// length expected, also when the digest did not match; "" before. It may be
// called while another goroutine reads.
func (r *resumeReader) delivered() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.actual
}

func (r *resumeReader) stopped() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// failed reports the error that ended the stream, if it was not a clean end.
// It may be called while another goroutine reads.
func (r *resumeReader) failed() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil || r.err == io.EOF {
		return nil
	}
	return r.err
}

// end records the error that ends the stream.
func (r *resumeReader) end(err error) error {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
	return err
}

func (r *resumeReader) Close() error {
	if r.check != nil {
		r.check.s.stop()
	}
	if r.rc != nil {
		return r.rc.Close()
	}
	return nil
}

// sourceReaderAt reads a Source at random offsets (for qcow2 metadata and the xz
// index), one Open per call. It does not hash.
type sourceReaderAt struct {
	ctx context.Context
	src Source
}

func (s sourceReaderAt) ReadAt(p []byte, off int64) (int, error) {
	rc, _, err := s.src.Open(s.ctx, off)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n, err := io.ReadFull(rc, p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	}
	return n, err
}
