package flash

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for loop devices (CI runs as root)")
	}
	if _, err := exec.LookPath("losetup"); err != nil {
		t.Skip("losetup is not installed (.ci/run installs util-linux)")
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// loopOver binds file to a free loop device, detached when the test ends.
func loopOver(t *testing.T, file string) string {
	t.Helper()
	dev := run(t, "losetup", "--find", "--show", file)
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v\n%s", dev, err, out)
		}
	})
	return dev
}

// backingFile makes a file of size bytes in dir, each byte 0xee (old
// contents that zeroing must replace).
func backingFile(t *testing.T, dir string, size int) string {
	t.Helper()
	p := filepath.Join(dir, "backing")
	if err := os.WriteFile(p, bytes.Repeat([]byte{0xee}, size), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tmpfsLoop returns a loop device over a file of size bytes on a tmpfs the
// test mounts, and the file.
func tmpfsLoop(t *testing.T, size int) (dev, file string) {
	t.Helper()
	dir := t.TempDir()
	run(t, "mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", 2*size), "bty-test", dir)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
		}
	})
	file = backingFile(t, dir, size)
	return loopOver(t, file), file
}

// stopPunching makes fallocate(PUNCH_HOLE) really unsupported on a loop
// device over a tmpfs file, from now on. tmpfs punches holes but has no
// FALLOC_FL_ZERO_RANGE, so a BLKZEROOUT on the loop device (WRITE ZEROES
// without unmap) fails in the backing file, and the kernel turns WRITE ZEROES
// off for the device: a punch returns EOPNOTSUPP after that, and BLKZEROOUT
// writes zero pages.
func stopPunching(t *testing.T, fd int, dev string) {
	t.Helper()
	if err := blkZeroOut(fd, 0, 4096); err != nil {
		t.Fatalf("BLKZEROOUT on %s: %v", dev, err)
	}
	if err := punchHole(fd, 0, 4096); !errors.Is(err, unix.EOPNOTSUPP) {
		t.Skipf("a punch on a loop device over tmpfs after BLKZEROOUT = %v, want EOPNOTSUPP: this kernel keeps WRITE ZEROES on", err)
	}
}

// stripes is an image of n MiB: random data in every third MiB, zeros
// between, so that the writer sends many separate zero ranges.
func stripes(n int) []byte {
	img := make([]byte, n<<20)
	rng := mrand.NewChaCha8([32]byte{9})
	for i := 0; i < n; i += 3 {
		rng.Read(img[i<<20 : (i+1)<<20])
	}
	return img
}

// writeImage puts img on the open target tg as Flash does: prepare, blocks
// through the writer's goroutines, then the pieces and the held-back head.
// afterPrepare, if set, runs between prepare and the writing.
func writeImage(t *testing.T, tg *target, img []byte, afterPrepare func()) {
	t.Helper()
	if err := tg.prepare(); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	if afterPrepare != nil {
		afterPrepare()
	}
	w := newWriter(context.Background(), tg, newPool(8), true, false)
	for off := 0; off < len(img); off += blockSize {
		b, err := w.pool.get(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		n := copy(b, img[off:])
		if err := w.block(int64(off), b, n); err != nil {
			t.Fatalf("block at %d: %v", off, err)
		}
	}
	for _, step := range []func() error{w.drain, func() error { return tg.finishSize(w.end) }, w.writePieces, w.writeHead, tg.sync} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.readBack(func(int64) {}); err != nil {
		t.Fatalf("readBack = %v", err)
	}
}

// TestTargetZeroFallbacks zeroes many ranges from the writer's concurrent
// goroutines on a device that stops punching once the writing has begun (a
// real loop device, as prepare punched its first and last MiB), on the same
// device with BLKZEROOUT refused as unsupported from then on as well, and on a
// file target; the target must hold the image. Run with -race: the fallbacks
// are decided by whichever writer goroutine meets the refusal first.
func TestTargetZeroFallbacks(t *testing.T) {
	const mib = 24
	img := stripes(mib)
	for _, tc := range []struct {
		name      string
		dev       bool
		noZeroOut bool
	}{
		{"loop device that stops punching", true, false},
		{"loop device that stops punching and BLKZEROOUT", true, true},
		{"file", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var path, file string
			if tc.dev {
				requireRoot(t)
				path, file = tmpfsLoop(t, mib<<20)
			} else {
				path = backingFile(t, t.TempDir(), mib<<20)
				file = path
			}
			tg, err := openTarget(path)
			if err != nil {
				t.Fatal(err)
			}
			defer tg.close()
			var afterPrepare func()
			var writing atomic.Bool
			var punched, zeroedOut atomic.Int64
			if tc.dev {
				punch, zeroOut := tg.sys.punch, tg.sys.zeroOut
				tg.sys.punch = func(fd int, off, n int64) error {
					if writing.Load() {
						punched.Add(1)
					}
					return punch(fd, off, n)
				}
				tg.sys.zeroOut = func(fd int, off, n int64) error {
					if !writing.Load() {
						return zeroOut(fd, off, n)
					}
					zeroedOut.Add(1)
					if tc.noZeroOut {
						return syscall.EOPNOTSUPP
					}
					return zeroOut(fd, off, n)
				}
				afterPrepare = func() {
					stopPunching(t, tg.sys.fd, path)
					writing.Store(true)
				}
			}
			writeImage(t, tg, img, afterPrepare)
			got, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, img) {
				t.Fatalf("%s holds %d bytes that differ from the image from byte %d", tc.name, len(got), commonPrefix(got, img))
			}
			// Each way of zeroing is tried until the device refuses it, and
			// then no more: many ranges were zeroed, few calls refused.
			if tc.dev && (punched.Load() == 0 || punched.Load() > inFlight) {
				t.Errorf("punch tried %d times while writing, want 1 to %d (until the first refusal)", punched.Load(), inFlight)
			}
			if tc.noZeroOut && (zeroedOut.Load() == 0 || zeroedOut.Load() > inFlight) {
				t.Errorf("BLKZEROOUT tried %d times while writing, want 1 to %d", zeroedOut.Load(), inFlight)
			}
		})
	}
}

// TestTargetPunchAfterFailure: a punch that fails with an I/O error, not as
// unsupported, zeroes that range another way and leaves punching on, so the
// device still frees the blocks of later zero ranges (here: the loop
// device's backing file stays sparse, where BLKZEROOUT would allocate them).
// The failure is injected through the target's punch call: no real device
// can be made to return EIO for one punch.
func TestTargetPunchAfterFailure(t *testing.T) {
	requireRoot(t)
	const mib = 64
	img := make([]byte, mib<<20)
	rng := mrand.NewChaCha8([32]byte{3})
	rng.Read(img[:2<<20]) // data in the first 2 MiB, zeros after
	file := filepath.Join(t.TempDir(), "backing")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(file, mib<<20); err != nil {
		t.Fatal(err)
	}
	dev := loopOver(t, file)
	tg, err := openTarget(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.close()
	var calls atomic.Int64
	punch := tg.sys.punch
	tg.sys.punch = func(fd int, off, n int64) error {
		if calls.Add(1) == 1 {
			return syscall.EIO
		}
		return punch(fd, off, n)
	}
	writeImage(t, tg, img, nil)
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, img) {
		t.Fatalf("the target differs from the image from byte %d", commonPrefix(got, img))
	}
	var st unix.Stat_t
	if err := unix.Stat(file, &st); err != nil {
		t.Fatal(err)
	}
	if used := st.Blocks * 512; used > 8<<20 {
		t.Errorf("the backing file has %d MiB allocated after an image of 2 MiB of data and %d MiB of zeros; want the zero ranges punched after one failed punch (%d punches)", used>>20, mib-2, calls.Load())
	}
}

// shortReads caps every read of a twiceSource at max bytes, as a network
// source's reads are: the raw path then gets chunks at unaligned offsets.
type shortReads struct {
	*twiceSource
	max int
}

func (s shortReads) Open(ctx context.Context, off int64) (io.ReadCloser, int64, error) {
	rc, n, err := s.twiceSource.Open(ctx, off)
	return struct {
		io.Reader
		io.Closer
	}{&cappedReader{rc, s.max}, rc}, n, err
}

type cappedReader struct {
	r   io.Reader
	max int
}

func (c *cappedReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.max)]) }

// The raw path writes the source's buffers as they are where it can (aligned
// reads past the first MiB) and copies them where it cannot (short reads at
// odd offsets, the first MiB): either way the loop device ends up with the
// image, byte for byte, and a read-back agrees.
func TestRawTakeOnLoop(t *testing.T) {
	requireRoot(t)
	img := sparseImage(9<<20 + 1536) // whole sectors, the last 4 KiB not whole
	dev, file := tmpfsLoop(t, len(img))
	for name, src := range map[string]Source{
		"aligned reads, holes": &twiceSource{reads: [][]byte{img}, holes: true},
		"aligned reads":        &twiceSource{reads: [][]byte{img}},
		"short reads":          shortReads{&twiceSource{reads: [][]byte{img}}, 100003},
	} {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(file, bytes.Repeat([]byte{0xee}, len(img)), 0o600); err != nil {
				t.Fatal(err)
			}
			res, err := Flash(context.Background(), src, dev, Options{Verify: true})
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, img) || !res.Verified || res.Written+res.Zeroed != int64(len(img)) {
				t.Errorf("target equal %v, verified %v, written+zeroed %d; want the image's %d bytes", bytes.Equal(got, img), res.Verified, res.Written+res.Zeroed, len(img))
			}
		})
	}
}
