package lzma2

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"

	"github.com/ulikunitz/xz/lzma"
)

// sample returns n bytes that compress like a disk image: text, runs of
// zeros, repeated records, a little noise, and stretches of this test binary.
func sample(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	exe, _ := os.ReadFile(os.Args[0])
	words := []string{"the ", "disk ", "image ", "flash ", "block ", "zero ", "\n", "bty ", "xz ", "0123456789", "\x00\x00\x00\x01"}
	b := make([]byte, 0, n)
	for len(b) < n {
		switch r.IntN(6) {
		case 0:
			for range r.IntN(200) {
				b = append(b, words[r.IntN(len(words))]...)
			}
		case 1:
			b = append(b, make([]byte, r.IntN(5000))...)
		case 2:
			k := r.IntN(64)
			if len(b) > k {
				rec := b[len(b)-k:]
				for range r.IntN(20) {
					b = append(b, rec...)
				}
			}
		case 3:
			for range r.IntN(300) {
				b = append(b, byte(r.Uint32()))
			}
		default:
			if len(exe) > 0 {
				o := r.IntN(len(exe))
				b = append(b, exe[o:min(len(exe), o+r.IntN(20000))]...)
			}
		}
	}
	return b[:n]
}

// xzRaw compresses data to a raw LZMA2 stream with xz's --lzma2 options.
func xzRaw(t testing.TB, data []byte, opts string) []byte {
	t.Helper()
	if _, err := exec.LookPath("xz"); err != nil {
		t.Skip("xz not installed (Debian package xz-utils)")
	}
	cmd := exec.Command("xz", "--format=raw", "--lzma2="+opts, "-c")
	cmd.Stdin = bytes.NewReader(data)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("xz --lzma2=%s: %v: %s", opts, err, stderr.Bytes())
	}
	return out.Bytes()
}

func decodeAll(comp []byte, window int) ([]byte, error) {
	z, err := NewReader(bytes.NewReader(comp), window)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(z)
}

func TestXzRaw(t *testing.T) {
	data := sample(3<<20, 1)
	for _, opts := range []string{"preset=6", "preset=0", "dict=4KiB", "lc=0,lp=0,pb=0", "lc=4,lp=0,pb=4", "lc=0,lp=4,pb=2", "lc=1,lp=3,pb=1", "lc=3,lp=1,pb=0", "mode=fast,nice=273"} {
		t.Run(opts, func(t *testing.T) {
			comp := xzRaw(t, data, opts)
			got, err := decodeAll(comp, 8<<20)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("decode: %d bytes, differ from the %d bytes in", len(got), len(data))
			}
		})
	}
}

func TestUlikunitz(t *testing.T) {
	data := sample(1<<20, 2)
	var b bytes.Buffer
	w, err := lzma.Writer2Config{DictCap: 64 << 10}.NewWriter2(&b)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	w.Close()
	got, err := decodeAll(b.Bytes(), 64<<10)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("decode: %v, equal %v", err, bytes.Equal(got, data))
	}
	_ = errors.New
	_ = fmt.Sprint
}

// TestWriteSample writes LZMA2_SAMPLE (raw data) for manual benchmarks.
func TestWriteSample(t *testing.T) {
	f := os.Getenv("LZMA2_SAMPLE")
	if f == "" {
		t.Skip("LZMA2_SAMPLE not set")
	}
	if err := os.WriteFile(f, sample(32<<20, 3), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDecodeFile decodes LZMA2_FILE (raw LZMA2, 8 MiB dictionary) to nothing,
// for timing the decoder against xz --format=raw -dc.
func TestDecodeFile(t *testing.T) {
	f := os.Getenv("LZMA2_FILE")
	if f == "" {
		t.Skip("LZMA2_FILE not set")
	}
	comp, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	z, err := NewReader(bytes.NewReader(comp), 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	n, err := z.WriteTo(io.Discard)
	t.Logf("%d bytes, %v", n, err)
}
