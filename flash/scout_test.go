package flash

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"bty/category"
)

// twiceSource is a rereadable source whose later opens may see other bytes, as
// a file rewritten while it is flashed would.
type twiceSource struct {
	mu    sync.Mutex
	reads [][]byte // the bytes each Open sees, the last one for any further opens
	holes bool     // readers report runs of zeros as holes
	opens int
	read  atomic.Int64 // bytes read, by all readers (holes skipped are not read)
}

func (s *twiceSource) Name() string     { return "twice.img" }
func (s *twiceSource) Rereadable() bool { return true }

func (s *twiceSource) Open(_ context.Context, off int64) (io.ReadCloser, int64, error) {
	s.mu.Lock()
	data := s.reads[min(s.opens, len(s.reads)-1)]
	s.opens++
	s.mu.Unlock()
	r := &holeReader{data: data, off: off, read: &s.read}
	if !s.holes {
		return io.NopCloser(struct{ io.Reader }{r}), int64(len(data)), nil
	}
	return r, int64(len(data)), nil
}

// holeReader serves data; with SkipHole, whole 64 KiB runs of zeros are holes.
type holeReader struct {
	data []byte
	off  int64
	read *atomic.Int64 // counts the bytes read, if set
}

func (r *holeReader) Read(p []byte) (int, error) {
	if r.off >= int64(len(r.data)) {
		return 0, io.EOF
	}
	n := copy(p, r.data[r.off:])
	r.off += int64(n)
	if r.read != nil {
		r.read.Add(int64(n))
	}
	return n, nil
}

func (r *holeReader) SkipHole() int64 {
	const unit = 64 << 10
	start := r.off
	for r.off%unit == 0 && r.off+unit <= int64(len(r.data)) && isZero(r.data[r.off:r.off+unit]) {
		r.off += unit
	}
	return r.off - start
}

func (r *holeReader) Close() error { return nil }

// sparseImage is size bytes of zeros with random data at a few places, some of
// them not aligned to anything.
func sparseImage(size int) []byte {
	b := make([]byte, size)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, at := range []int{0, 3<<20 + 77, 5 << 20, size - 5000} {
		for i := at; i < min(at+300<<10, size); i++ {
			b[i] = byte(rng.Uint32())
		}
	}
	return b
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestScoutDigest(t *testing.T) {
	img := sparseImage(9<<20 + 1234)
	for _, holes := range []bool{false, true} {
		src := &twiceSource{reads: [][]byte{img}, holes: holes}
		out := filepath.Join(t.TempDir(), "out.img")
		res, err := Flash(context.Background(), src, out, Options{SHA256: sha256Hex(img)})
		if err != nil {
			t.Fatalf("holes=%v: %v", holes, err)
		}
		if res.SHA256 != sha256Hex(img) {
			t.Errorf("holes=%v: digest %s, want %s", holes, res.SHA256, sha256Hex(img))
		}
		if src.opens < 2 {
			t.Errorf("holes=%v: the source was opened %d times; the scout did not read it", holes, src.opens)
		}
		got, err := os.ReadFile(out)
		if err != nil || !bytes.Equal(got, img) {
			t.Errorf("holes=%v: the target differs from the image (%v)", holes, err)
		}
	}
}

// A file that changes between the scout's read and the writing read fails the
// flash, whichever of the two saw which version. (The scout runs only when a
// digest is expected: without one the file is read once, as dd reads it.)
func TestScoutSeesChange(t *testing.T) {
	img := sparseImage(9 << 20)
	flipped := bytes.Clone(img)
	flipped[5<<20+4321] ^= 1
	longer := append(bytes.Clone(img), 1, 2, 3)
	hole := bytes.Clone(img)
	clear(hole[5<<20 : 5<<20+300<<10]) // data turned into a hole
	for name, later := range map[string][]byte{"flipped byte": flipped, "grown": longer, "data to hole": hole} {
		for _, holes := range []bool{false, true} {
			src := &twiceSource{reads: [][]byte{img, later}, holes: holes}
			out := filepath.Join(t.TempDir(), "out.img")
			_, err := Flash(context.Background(), src, out, Options{SHA256: sha256Hex(img)})
			if !errors.Is(err, category.ErrIntegrity) || !strings.Contains(err.Error(), "changed while it was being read") {
				t.Errorf("%s, holes=%v: err = %v, want a change reported as an integrity failure", name, holes, err)
			}
		}
	}
}

// gatedSource holds every read back until gate is closed.
type gatedSource struct {
	data []byte
	gate chan struct{}
}

func (s *gatedSource) Name() string { return "gated.img" }

func (s *gatedSource) Open(_ context.Context, off int64) (io.ReadCloser, int64, error) {
	<-s.gate
	return io.NopCloser(bytes.NewReader(s.data[off:])), int64(len(s.data)), nil
}

// The reader that feeds the target never waits for the scout (at the final
// hole of an image the scout may still be hashing while the target flushes):
// the checker takes every block while the scout is held back, and only finish
// waits for it, then compares.
func TestCheckerDoesNotWaitForScout(t *testing.T) {
	img := sparseImage(9<<20 + 123) // zeros from 4 MiB to 5 MiB
	src := &gatedSource{data: img, gate: make(chan struct{})}
	ctx := context.Background()
	c := newChecker(ctx, newScout(ctx, src), src.Name())
	taken := make(chan error, 1)
	go func() {
		err := c.write(img[:4<<20])
		if err == nil {
			err = c.zeros(1 << 20) // the image's zeros, as a hole
		}
		if err == nil {
			err = c.write(img[5<<20:])
		}
		taken <- err
	}()
	select {
	case err := <-taken:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second): // a deadlock guard, not a speed check
		close(src.gate)
		t.Fatal("the checker waited for the scout before taking the next block")
	}
	close(src.gate)
	digest, err := c.finish(int64(len(img)))
	if err != nil || digest != sha256Hex(img) {
		t.Errorf("finish = %s, %v; want %s", digest, err, sha256Hex(img))
	}
}

// A raw image flashed with no expected digest is read once, its holes are not
// read at all, and its digest is reported as skipped rather than computed;
// the target still gets every byte. Only the first few MiB, read while the
// format is not known yet, may be read through a hole.
func TestRawWithoutDigestReadOnce(t *testing.T) {
	img := make([]byte, 64<<20)
	rng := rand.New(rand.NewPCG(3, 4))
	data := 0
	for at := 0; at < len(img); at += 8 << 20 { // 3 MiB of data every 8 MiB
		for i := at; i < at+3<<20; i++ {
			img[i] = byte(rng.Uint32())
		}
		data += 3 << 20
	}
	src := &twiceSource{reads: [][]byte{img}, holes: true}
	out := filepath.Join(t.TempDir(), "out.img")
	res, err := Flash(context.Background(), src, out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.SHA256Skipped || res.SHA256 != "" || res.Digest() != "not computed" {
		t.Errorf("result sha256 %q, skipped %v, digest %q; want \"\", true, \"not computed\"", res.SHA256, res.SHA256Skipped, res.Digest())
	}
	if src.opens != 1 {
		t.Errorf("the source was opened %d times, want once", src.opens)
	}
	lead := int64(prefetchBuffers+2) * prefetchSize
	if got := src.read.Load(); got > int64(data)+lead {
		t.Errorf("%d bytes were read from an image with %d bytes of data, want at most %d more", got, data, lead)
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, img) {
		t.Errorf("the target differs from the image (%v)", err)
	}

	// With the digest expected, the same image is hashed, holes and all,
	// and checked.
	src = &twiceSource{reads: [][]byte{img}, holes: true}
	res, err = Flash(context.Background(), src, out, Options{SHA256: sha256Hex(img)})
	if err != nil || res.SHA256Skipped || res.SHA256 != sha256Hex(img) {
		t.Errorf("with the digest expected: sha256 %q, skipped %v, err %v; want %s", res.SHA256, res.SHA256Skipped, err, sha256Hex(img))
	}
}

// Any other format is hashed without an expected digest: the digest of the
// compressed bytes, beside decoding.
func TestCompressedWithoutDigestHashed(t *testing.T) {
	img := sparseImage(3<<20 + 5)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(img)
	zw.Close()
	src := &twiceSource{reads: [][]byte{gz.Bytes()}}
	out := filepath.Join(t.TempDir(), "out.img")
	res, err := Flash(context.Background(), src, out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.SHA256Skipped || res.SHA256 != sha256Hex(gz.Bytes()) {
		t.Errorf("gzip without a digest: sha256 %q, skipped %v; want %s, false", res.SHA256, res.SHA256Skipped, sha256Hex(gz.Bytes()))
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, img) {
		t.Errorf("the target differs from the image (%v)", err)
	}
}
