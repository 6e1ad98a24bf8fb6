package lzma2

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
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
}

// chunks splits a raw LZMA2 stream into its chunks (without the end marker).
func chunks(t *testing.T, b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 && b[0] != 0 {
		c := b[0]
		n := 3 + (int(b[1])<<8 | int(b[2])) + 1
		if c >= 0x80 {
			n = 5 + (int(b[3])<<8 | int(b[4])) + 1
			if c >= 0xc0 {
				n++
			}
		}
		out = append(out, b[:n])
		b = b[n:]
	}
	if len(b) != 1 {
		t.Fatalf("stream does not end with its end marker")
	}
	return out
}

// TestResets splices chunks of two xz streams into one with every kind of
// reset: an uncompressed chunk that resets the dictionary, then an LZMA chunk
// that sets properties without resetting it (0xc0), then a second stream's
// chunks after a state reset only (0xa0), then uncompressed chunks without a
// reset (0x02). lc=lp=pb=0 makes the LZMA chunks independent of the bytes
// before them. The result must match ulikunitz and xz.
func TestResets(t *testing.T) {
	a, b := sample(600<<10, 4), sample(300<<10, 5)
	ca := chunks(t, xzRaw(t, a, "lc=0,lp=0,pb=0"))
	cb := chunks(t, xzRaw(t, b, "preset=1,lc=0,lp=0,pb=0"))
	if ca[0][0] < 0xe0 || cb[0][0] < 0xe0 {
		t.Fatalf("first chunks %#x %#x, want a dictionary reset", ca[0][0], cb[0][0])
	}
	var s []byte
	var want []byte
	s = append(s, 0x01, 0, 2, 'a', 'b', 'c') // uncompressed, dictionary reset
	want = append(want, "abc"...)
	first := bytes.Clone(ca[0])
	first[0] = 0xc0 | first[0]&0x1f // properties and state, not the dictionary
	s = append(s, first...)
	for _, c := range ca[1:] {
		s = append(s, c...)
	}
	want = append(want, a...)
	if cb[0][5] != ca[0][5] {
		t.Fatalf("properties %#x and %#x differ", ca[0][5], cb[0][5])
	}
	s = append(s, 0xa0|cb[0][0]&0x1f) // state only: no properties byte
	s = append(s, cb[0][1:5]...)
	s = append(s, cb[0][6:]...)
	for _, c := range cb[1:] {
		s = append(s, c...)
	}
	want = append(want, b...)
	s = append(s, 0x02, 0, 1, 'x', 'y', 0x02, 0, 0, 'z') // uncompressed, no reset
	want = append(want, "xyz"...)
	s = append(s, 0)

	types := map[byte]bool{}
	for _, c := range chunks(t, s) {
		if c[0] >= 0x80 {
			types[c[0]&0xe0] = true
		} else {
			types[c[0]] = true
		}
	}
	for _, c := range []byte{0x01, 0x02, 0x80, 0xa0, 0xc0} {
		if !types[c] {
			t.Errorf("the spliced stream has no chunk of type %#02x", c)
		}
	}
	got, err := decodeAll(s, 1<<20)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("decode: %d bytes, %v; want %d bytes", len(got), err, len(want))
	}
	ur, _ := lzma.Reader2Config{DictCap: 1 << 20}.NewReader2(bytes.NewReader(s))
	if u, err := io.ReadAll(ur); err != nil || !bytes.Equal(u, want) {
		t.Errorf("ulikunitz: %d bytes, %v", len(u), err)
	}
	cmd := exec.Command("xz", "--format=raw", "--lzma2=dict=1MiB", "-dc")
	cmd.Stdin = bytes.NewReader(s)
	if x, err := cmd.Output(); err != nil || !bytes.Equal(x, want) {
		t.Errorf("xz: %d bytes, %v", len(x), err)
	}
}

// TestCorrupt truncates and damages a stream: every result is an error
// wrapping ErrCorrupt (and io.ErrUnexpectedEOF when truncated), and what was
// decoded before it is a prefix of the real output.
func TestCorrupt(t *testing.T) {
	data := sample(1<<20, 6)
	comp := xzRaw(t, data, "preset=6")
	for _, cut := range []int{0, 1, 3, 6, 7, 100, len(comp) / 2, len(comp) - 2, len(comp) - 1} {
		got, err := decodeAll(comp[:cut], 8<<20)
		if !errors.Is(err, ErrCorrupt) || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("truncated to %d: %v, want ErrCorrupt and io.ErrUnexpectedEOF", cut, err)
		}
		if !bytes.HasPrefix(data, got) {
			t.Errorf("truncated to %d: the %d bytes decoded are not a prefix of the data", cut, len(got))
		}
	}
	for i := 0; i < len(comp); i += len(comp)/50 + 1 {
		b := bytes.Clone(comp)
		b[i] ^= 0x10
		got, err := decodeAll(b, 8<<20)
		if err == nil && bytes.Equal(got, data) {
			continue // a flip the format cannot see (rare)
		}
		if err == nil {
			t.Errorf("byte %d flipped: decoded %d different bytes without an error", i, len(got))
		} else if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "input byte") {
			t.Errorf("byte %d flipped: %v, want ErrCorrupt with an offset", i, err)
		}
	}
	if _, err := decodeAll([]byte{0xe0, 0, 0, 0, 4, 0x5d, 0, 0, 0, 0, 0, 0}, 1<<20); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a range coder whose code is not 0 at the end: %v, want ErrCorrupt", err)
	}
	if _, err := decodeAll([]byte{0x80, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0}, 1<<20); !errors.Is(err, ErrCorrupt) {
		t.Errorf("an LZMA chunk before any reset: %v, want ErrCorrupt", err)
	}
	if _, err := decodeAll([]byte{0xe0, 0, 0, 0, 4, 9 * 5 * 1, 0, 0, 0, 0, 0, 0}, 1<<20); !errors.Is(err, ErrCorrupt) {
		t.Errorf("lc+lp > 4: %v, want ErrCorrupt", err)
	}
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
