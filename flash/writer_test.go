package flash

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"bty/category"
)

// TestWriterPieces delivers an image as odd-sized pieces in shuffled order (as
// the qcow2 reader does), some data, some zero, and checks the file target, then
// that read-back catches a byte changed behind the writer's back.
func TestWriterPieces(t *testing.T) {
	const size = 5<<20 + 4321
	want := make([]byte, size)
	type span struct {
		off, n int64
		zero   bool
	}
	var spans []span
	rng := mrand.New(mrand.NewPCG(1, 2))
	for off := int64(0); off < size; {
		n := min(int64(size)-off, 512+rng.Int64N(300<<10))
		zero := rng.IntN(3) == 0
		if !zero {
			rand.Read(want[off : off+n])
		}
		spans = append(spans, span{off, n, zero})
		off += n
	}
	rng.Shuffle(len(spans), func(i, j int) { spans[i], spans[j] = spans[j], spans[i] })

	path := filepath.Join(t.TempDir(), "target")
	os.WriteFile(path, bytes.Repeat([]byte{0xee}, 8<<20), 0o644)
	tg, err := openTarget(path)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.close()
	if err := tg.prepare(); err != nil {
		t.Fatal(err)
	}
	w := newWriter(context.Background(), tg, newPool(8), true, false)
	for _, s := range spans {
		if s.zero {
			err = w.Zero(s.off, s.n)
		} else {
			err = w.Data(s.off, want[s.off:s.off+s.n])
		}
		if err != nil {
			t.Fatalf("piece %+v: %v", s, err)
		}
	}
	for _, step := range []func() error{w.drain, func() error { return tg.finishSize(w.end) }, w.writePieces, w.writeHead, tg.sync} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := os.ReadFile(path)
	if !bytes.Equal(got, want) {
		t.Fatalf("target after shuffled pieces: %d bytes, want %d; equal prefix %d", len(got), len(want), commonPrefix(got, want))
	}
	if err := w.readBack(func(int64) {}); err != nil {
		t.Fatalf("readBack of a good target = %v", err)
	}
	f, _ := os.OpenFile(path, os.O_WRONLY, 0)
	f.WriteAt([]byte{want[3<<20] ^ 1}, 3<<20)
	f.Close()
	if err := w.readBack(func(int64) {}); !errors.Is(err, category.ErrIntegrity) {
		t.Errorf("readBack after a flipped byte = %v, want an integrity error", err)
	}
}

func commonPrefix(a, b []byte) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}

func TestIsZero(t *testing.T) {
	b := make([]byte, 4099)
	if !isZero(b) {
		t.Errorf("isZero(zeros) = false")
	}
	for _, i := range []int{0, 7, 8, 4090, 4098} {
		b[i] = 1
		if isZero(b) {
			t.Errorf("isZero(one at %d) = true", i)
		}
		b[i] = 0
	}
}

// TestFlushWhileWriting: the flush Flash starts once all the data is sent runs
// while writes are in flight, and the result is byte-exact.
func TestFlushWhileWriting(t *testing.T) {
	img := make([]byte, 40<<20+5000)
	mrand.NewChaCha8([32]byte{7}).Read(img)
	src := &twiceSource{reads: [][]byte{img}}
	out := filepath.Join(t.TempDir(), "out.img")
	res, err := Flash(context.Background(), src, out, Options{Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(got, img) || res.Written != int64(len(img)) {
		t.Errorf("wrote %d bytes, target %d bytes (%v); want %d equal to the image", res.Written, len(got), err, len(img))
	}
}
