package catalog

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestFileSourceSparse reads a file with holes, from several offsets, and
// gets the same bytes as the file holds.
func TestFileSourceSparse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sparse.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 9<<20+123)
	for _, r := range [][2]int{{0, 4096}, {3 << 20, 3<<20 + 70000}, {8 << 20, 9<<20 + 100}} {
		rand.Read(want[r[0]:r[1]])
		if _, err := f.WriteAt(want[r[0]:r[1]], int64(r[0])); err != nil {
			t.Fatal(err)
		}
	}
	f.Truncate(int64(len(want)))
	f.Close()
	src := NewFileSource(path)
	for _, off := range []int64{0, 4096, 1 << 20, 3<<20 + 5, 8<<20 + 1, int64(len(want))} {
		rc, size, err := src.Open(context.Background(), off)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(struct{ io.Reader }{rc}) // small reads too
		rc.Close()
		if err != nil || size != int64(len(want)) || !bytes.Equal(got, want[off:]) {
			t.Errorf("Open(%d): %d bytes, size %d, err %v; want %d bytes equal to the file", off, len(got), size, err, len(want)-int(off))
		}
	}

	// Skipping holes as zeros and reading the rest gives the file, and skips
	// most of its zeros (the file system may allocate a little around data).
	rc, _, err := src.Open(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	skipper, ok := rc.(interface{ SkipHole() int64 })
	if !ok {
		t.Skip("no SkipHole on this platform")
	}
	var got []byte
	skipped := 0
	buf := make([]byte, 100000)
	for {
		if n := skipper.SkipHole(); n > 0 {
			got = append(got, make([]byte, n)...)
			skipped += int(n)
			continue
		}
		n, err := rc.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Errorf("SkipHole and Read gave %d bytes that differ from the file's %d", len(got), len(want))
	}
	if skipped < 6<<20 {
		t.Errorf("SkipHole skipped %d bytes of the file's 7 MiB of holes", skipped)
	}
}

// TestFileSourceRereadable: only a file with holes is worth the flash engine's
// second read (its scout hashes the holes ahead); a file without holes, like a
// compressed image, is read once.
func TestFileSourceRereadable(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("holes are found with SEEK_HOLE, on Linux")
	}
	dir := t.TempDir()
	full, sparse := filepath.Join(dir, "full.img.xz"), filepath.Join(dir, "sparse.img")
	data := make([]byte, 1<<20)
	rand.Read(data)
	if err := os.WriteFile(full, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sparse, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(sparse, 64<<20); err != nil {
		t.Fatal(err)
	}
	sources := map[string]FileSource{}
	for path, want := range map[string]bool{full: false, sparse: true, filepath.Join(dir, "missing"): false, dir: false} {
		sources[path] = NewFileSource(path)
		if got := sources[path].Rereadable(); got != want {
			t.Errorf("Rereadable(%s) = %v, want %v", filepath.Base(path), got, want)
		}
	}
	// It was decided when the source was made: Rereadable does not look at
	// the file again.
	if err := os.Remove(sparse); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(full, 64<<20); err != nil {
		t.Fatal(err)
	}
	if !sources[sparse].Rereadable() || sources[full].Rereadable() {
		t.Errorf("after the files changed, Rereadable = %v for the sparse file (removed), %v for the full one (now sparse), want what NewFileSource found: true, false", sources[sparse].Rereadable(), sources[full].Rereadable())
	}
}
