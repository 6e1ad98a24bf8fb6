package demo

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"bty/catalog"
	"bty/flash"
)

// TestSlowKeepsBehaviours: the demo's slow source keeps each optional
// behaviour of the source it wraps that the flash engine looks for: a sparse
// file stays Rereadable, its reader still skips holes, a missing file's
// error is still permanent; and a file without holes is not Rereadable.
func TestSlowKeepsBehaviours(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("holes are found with SEEK_HOLE, on Linux")
	}
	dir := t.TempDir()
	sparse, full := filepath.Join(dir, "sparse.img"), filepath.Join(dir, "full.img")
	data := bytes.Repeat([]byte("bty demo "), 1<<14)
	f, err := os.Create(sparse)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(data, 4<<20) // a 4 MiB hole first, data, a hole to the end
	f.Truncate(12 << 20)
	f.Close()
	want, _ := os.ReadFile(sparse)
	if err := os.WriteFile(full, want, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	wrap := func(path string) flash.Source {
		return Slow(catalog.NewFileSource(path), 12<<20, 10*time.Millisecond)
	}

	for path, want := range map[string]bool{sparse: true, full: false} {
		rs, ok := wrap(path).(flash.Rereadable)
		if inner := catalog.NewFileSource(path).Rereadable(); !ok || rs.Rereadable() != want || inner != want {
			t.Errorf("%s: slow source Rereadable %v (implemented: %v), the file source's %v, want %v", filepath.Base(path), ok && rs.Rereadable(), ok, inner, want)
		}
	}

	rc, _, err := wrap(sparse).Open(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	hs, ok := rc.(flash.HoleSkipper)
	if !ok {
		t.Fatalf("the slow source's reader (%T) skips no holes", rc)
	}
	var got []byte
	var skipped int64
	buf := make([]byte, 64<<10)
	for {
		if n := hs.SkipHole(); n > 0 {
			got = append(got, make([]byte, n)...)
			skipped += n
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
	if !bytes.Equal(got, want) || skipped < 8<<20 {
		t.Errorf("through the slow source: %d bytes (equal to the file: %v), %d of them skipped as holes; want the file's %d bytes, its 8 MiB of holes skipped", len(got), bytes.Equal(got, want), skipped, len(want))
	}

	_, _, err = wrap(filepath.Join(dir, "missing.img")).Open(ctx, 0)
	var pe flash.PermanentError
	if !errors.As(err, &pe) || !pe.Permanent() {
		t.Errorf("opening a missing file through the slow source = %v, want a permanent error", err)
	}
}
