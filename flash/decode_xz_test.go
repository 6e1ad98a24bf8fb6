package flash

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"

	"bty/category"
)

// xzSample is n bytes that compress like a disk image: zeros, text, records,
// this test binary, and a stretch of noise that xz stores as uncompressed
// LZMA2 chunks.
func xzSample(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	exe, _ := os.ReadFile(os.Args[0])
	b := make([]byte, 0, n+(1<<20))
	for len(b) < n {
		switch r.IntN(5) {
		case 0:
			b = append(b, make([]byte, r.IntN(100<<10))...)
		case 1:
			for range r.IntN(2000) {
				b = append(b, []string{"image ", "block ", "bty ", "\n", "disk "}[r.IntN(5)]...)
			}
		case 2:
			for range r.IntN(200 << 10) {
				b = append(b, byte(r.Uint32()))
			}
		default:
			o := r.IntN(len(exe))
			b = append(b, exe[o:min(len(exe), o+r.IntN(100<<10))]...)
		}
	}
	return b[:n]
}

// xzCLI compresses data with xz and the given options.
func xzCLI(t *testing.T, data []byte, args ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath("xz"); err != nil {
		t.Skip("xz not installed (Debian package xz-utils)")
	}
	cmd := exec.Command("xz", append(args, "-c")...)
	cmd.Stdin = bytes.NewReader(data)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("xz %v: %v: %s", args, err, stderr.Bytes())
	}
	return out.Bytes()
}

// xzCLIDecode is xz -dc.
func xzCLIDecode(comp []byte) ([]byte, error) {
	cmd := exec.Command("xz", "-dc")
	cmd.Stdin = bytes.NewReader(comp)
	return cmd.Output()
}

// decodeXzSeq decodes with the sequential reader flash uses for one block.
func decodeXzSeq(comp []byte) ([]byte, error) {
	r, err := newXzReader(bytes.NewReader(comp))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// decodeXzPar decodes a block per worker, as flash does for several blocks;
// ok is false if the index does not allow it.
func decodeXzPar(comp []byte) (img []byte, ok bool, err error) {
	blocks, ok := xzIndex(bytes.NewReader(comp), int64(len(comp)))
	if !ok {
		return nil, false, nil
	}
	var size int64
	for _, b := range blocks {
		size += b.size
	}
	sink := newMemSink(size)
	if err := xzParallel(context.Background(), bytes.NewReader(comp), blocks, sink); err != nil {
		return nil, true, err
	}
	if err := sink.check(); err != nil && size > 0 {
		return nil, true, err
	}
	return sink.img, true, nil
}

// TestXzDecode decodes xz files that xz made with every kind of option, in
// both of flash's paths, and compares with the input, xz -dc and ulikunitz.
func TestXzDecode(t *testing.T) {
	data := xzSample(3<<20, 1)
	big := xzSample(10<<20, 2)
	cases := []struct {
		name string
		data []byte
		args []string
	}{
		{"one block", data, []string{"-T1"}},
		{"check none", data, []string{"-T1", "--check=none"}},
		{"check crc32", data, []string{"-T1", "--check=crc32"}},
		{"check sha256", data, []string{"-T1", "--check=sha256"}},
		{"blocks", data, []string{"-T2", "--block-size=1MiB"}},
		{"blocks sha256", data, []string{"-T2", "--block-size=700KiB", "--check=sha256"}},
		{"dict 4KiB", data, []string{"-T1", "--lzma2=preset=0,dict=4KiB"}},
		{"lc4 lp0 pb4", data, []string{"-T1", "--lzma2=lc=4,lp=0,pb=4"}},
		{"lc0 lp4 pb0", data, []string{"-T1", "--lzma2=lc=0,lp=4,pb=0"}},
		{"lc2 lp2 pb1", data, []string{"-T2", "--block-size=2MiB", "--lzma2=lc=2,lp=2,pb=1"}},
		{"lc1 lp3 pb3", data, []string{"-T1", "--lzma2=preset=1,lc=1,lp=3,pb=3"}},
		{"lc3 lp1 pb2 extreme", data, []string{"-T1", "--lzma2=preset=6e,lc=3,lp=1,pb=2"}},
		{"fast nice", data, []string{"-T1", "--lzma2=mode=fast,nice=273,mf=hc4"}},
		{"empty", nil, []string{"-T1"}},
		{"one byte", []byte{7}, []string{"-T1"}},
		{"preset 9 large", big, []string{"-T1", "-9"}},
		{"block list", data, []string{"-T1", "--block-list=100KiB,3MiB,10"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			comp := xzCLI(t, tc.data, tc.args...)
			checkXzDecode(t, comp, tc.data, true)
		})
	}
	t.Run("concatenated", func(t *testing.T) {
		a := xzCLI(t, data[:1<<20], "-T1")
		b := xzCLI(t, data[1<<20:3<<20], "-T2", "--block-size=512KiB", "--check=crc32")
		c := xzCLI(t, data[3<<20:], "-T1", "--check=sha256") // empty
		comp := append(append(append(append([]byte{}, a...), 0, 0, 0, 0), b...), c...)
		comp = append(comp, 0, 0, 0, 0, 0, 0, 0, 0)
		checkXzDecode(t, comp, data, true)
	})
	t.Run("dict 1.5GiB header", func(t *testing.T) {
		// xz cannot compress with a 1.5 GiB dictionary here (it would
		// take 16 GiB); the header's value is what matters: rewrite it.
		comp := xzCLI(t, data, "-T1", "--lzma2=dict=1MiB")
		setXzDict(t, comp, 37) // 3 << 29 bytes
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		checkXzDecode(t, comp, data, false) // ulikunitz would allocate 1.5 GiB
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 100<<20 {
			t.Errorf("decoding a 1.5 GiB-dictionary header allocated %d MiB", alloc>>20)
		}
	})
}

// setXzDict rewrites the dictionary size of the first block header of a
// one-block file (flags 0: LZMA2 filter flags from byte 2).
func setXzDict(t *testing.T, comp []byte, d byte) {
	h := comp[12:]
	n := (int(h[0]) + 1) * 4
	if h[1] != 0 || h[2] != 0x21 || h[3] != 1 {
		t.Fatalf("unexpected block header % x", h[:n])
	}
	h[4] = d
	binary.LittleEndian.PutUint32(h[n-4:], crc32.ChecksumIEEE(h[:n-4]))
}

func checkXzDecode(t *testing.T, comp, want []byte, ulikunitz bool) {
	t.Helper()
	got, err := decodeXzSeq(comp)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("sequential: %d bytes, %v; want %d bytes", len(got), err, len(want))
	}
	par, ok, err := decodeXzPar(comp)
	if ok && (err != nil || !bytes.Equal(par, want)) {
		t.Errorf("parallel: %d bytes, %v; want %d bytes", len(par), err, len(want))
	}
	if xzd, err := xzCLIDecode(comp); err != nil || !bytes.Equal(xzd, want) {
		t.Errorf("xz -dc: %d bytes, %v", len(xzd), err)
	}
	if ulikunitz {
		r, err := xz.NewReader(bytes.NewReader(comp))
		if err == nil {
			var u []byte
			u, err = io.ReadAll(r)
			if err == nil && !bytes.Equal(u, want) {
				t.Errorf("ulikunitz: %d bytes, differ", len(u))
			}
		}
		if err != nil {
			t.Errorf("ulikunitz: %v", err)
		}
	}
}

// TestXzCorrupt flips bytes in and truncates one- and multi-block files: each
// must fail as an integrity error naming an offset, in both paths, never
// panic or decode to something else.
func TestXzCorrupt(t *testing.T) {
	data := xzSample(3<<20, 3)
	for _, args := range [][]string{{"-T1"}, {"-T2", "--block-size=1MiB", "--check=sha256"}, {"-T1", "--check=crc32"}} {
		comp := xzCLI(t, data, args...)
		n := len(comp)
		var variants []struct {
			name string
			b    []byte
		}
		for _, cut := range []int{1, 6, 12, 13, 40, n / 3, n / 2, n - 40, n - 13, n - 12, n - 1} {
			variants = append(variants, struct {
				name string
				b    []byte
			}{"truncated to " + strconv.Itoa(cut), comp[:cut]})
		}
		for _, at := range []int{6, 7, 9, 12, 13, 14, 16, 20, 30, 100, n / 3, n / 2, 2 * n / 3, n - 60, n - 30, n - 20, n - 14, n - 9, n - 3} {
			b := bytes.Clone(comp)
			b[at] ^= 0x55
			variants = append(variants, struct {
				name string
				b    []byte
			}{"byte " + strconv.Itoa(at) + " flipped", b})
		}
		variants = append(variants, struct {
			name string
			b    []byte
		}{"garbage after", append(bytes.Clone(comp), 1, 2, 3, 4)}, struct {
			name string
			b    []byte
		}{"padding not a multiple of 4", append(bytes.Clone(comp), 0, 0)})
		for _, v := range variants {
			t.Run(strings.Join(args, " ")+"/"+v.name, func(t *testing.T) {
				got, err := decodeXzSeq(v.b)
				if err == nil {
					t.Fatalf("sequential: decoded %d bytes (equal %v), want an error", len(got), bytes.Equal(got, data))
				}
				if !errors.Is(err, category.ErrIntegrity) || !strings.Contains(err.Error(), "byte") {
					t.Errorf("sequential: %v, want an integrity error with an offset", err)
				}
				if _, ok, err := decodeXzPar(v.b); ok && !errors.Is(err, category.ErrIntegrity) {
					t.Errorf("parallel: %v, want an integrity error", err)
				}
			})
		}
	}
}

// TestXzDecodeFile decodes BTY_XZ_FILE to nothing with bty's reader, or
// ulikunitz's with BTY_XZ_ULIKUNITZ=1: for profiles (go test -cpuprofile).
func TestXzDecodeFile(t *testing.T) {
	f := os.Getenv("BTY_XZ_FILE")
	if f == "" {
		t.Skip("BTY_XZ_FILE not set")
	}
	src, err := os.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var r io.Reader
	if os.Getenv("BTY_XZ_ULIKUNITZ") == "1" {
		r, err = xz.NewReader(bufio.NewReaderSize(src, 64<<10))
	} else {
		r, err = newXzReader(src)
	}
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, blockSize)
	var n int64
	for {
		k, err := fill(r, buf)
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d bytes", n)
}
