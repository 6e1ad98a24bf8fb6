package flash

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dsnet/compress/bzip2"
)

func bz2(t *testing.T, data []byte, level int) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := bzip2.NewWriter(&b, &bzip2.WriterConfig{Level: level})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// imageLike is n bytes of runs of zeros, text-like and random data, so the
// blocks decode to very different sizes.
func imageLike(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, 0, n)
	for len(b) < n {
		k := min(n-len(b), 1+r.IntN(3<<20))
		switch r.IntN(3) {
		case 0:
			b = append(b, make([]byte, k)...)
		case 1:
			for range k {
				b = append(b, "etaoin shrdlu\n"[r.IntN(14)])
			}
		default:
			for range k {
				b = append(b, byte(r.Uint32()))
			}
		}
	}
	return b
}

// bzDecode decodes src in parallel into an image of size bytes, checking that
// each byte is delivered once.
func bzDecode(src []byte, size int) ([]byte, error) {
	m := newMemSink(int64(size))
	s := newBzScanner(bytes.NewReader(src))
	if _, err := s.head(); err != nil {
		return nil, err
	}
	if err := bzip2Parallel(context.Background(), s, m); err != nil {
		return nil, err
	}
	return m.img, m.check()
}

// TestBzip2Parallel: single- and multi-block streams, streams of other levels
// concatenated (as pbzip2 writes them), an empty stream, and 8 MiB of zeros
// in one block decode to the bytes compressed.
func TestBzip2Parallel(t *testing.T) {
	a, b := imageLike(4<<20, 1), imageLike(2<<20, 2)
	zeros := append(make([]byte, 8<<20), "end"...)
	empty := bz2(t, nil, 9)
	for _, tc := range []struct {
		name string
		src  []byte
		want []byte
	}{
		{"small", bz2(t, []byte("hello, disk\n"), 9), []byte("hello, disk\n")},
		{"multi-block", bz2(t, a, 1), a},
		{"streams", bytes.Join([][]byte{bz2(t, a, 9), empty, bz2(t, b, 3)}, nil), append(append([]byte(nil), a...), b...)},
		{"zeros", bz2(t, zeros, 9), zeros},
	} {
		got, err := bzDecode(tc.src, len(tc.want))
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("%s: %d bytes, %v; want %d bytes (first difference at %d)", tc.name, len(got), err, len(tc.want), commonPrefix(got, tc.want))
		}
	}
}

// TestBzip2ParallelCorrupt: a flipped bit in any block, a cut, or bytes after
// the end fail the decode instead of giving a wrong image.
func TestBzip2ParallelCorrupt(t *testing.T) {
	data := imageLike(4<<20, 3)
	good := bz2(t, data, 1)
	r := rand.New(rand.NewPCG(4, 4))
	for i := range 12 {
		bad := bytes.Clone(good)
		bad[4+r.IntN(len(bad)-14)] ^= 1 << r.IntN(8)
		// room for a longer output: only the decoder may refuse it
		if _, err := bzDecode(bad, 2*len(data)); err == nil {
			t.Errorf("flip %d: no error", i)
		}
	}
	for _, n := range []int{len(good) / 2, len(good) - 5, len(good) - 1} {
		if _, err := bzDecode(good[:n], 2*len(data)); err == nil {
			t.Errorf("cut at %d of %d: no error", n, len(good))
		}
	}
	if _, err := bzDecode(append(bytes.Clone(good), "junk"...), 2*len(data)); err == nil {
		t.Errorf("trailing junk: no error")
	}
}

// TestBzScannerFalseMagic: magics that the compressed bits of a block happen to
// contain are passed over: a block magic whose header is implausible, an end
// magic whose checksum is not the stream's and that neither a stream nor the
// end of the source follows.
func TestBzScannerFalseMagic(t *testing.T) {
	var w bitWriter
	w.put(0x5, 13) // block bits
	w.put(bzBlockMagic, 48)
	w.put(0xdeadbeef, 32)
	w.put(1, 1) // randomized: never written by bzip2 0.9.5 and later
	w.put(0, 24)
	w.put(0x3, 7)
	w.put(bzBlockMagic, 48)
	w.put(0xdeadbeef, 32)
	w.put(0, 1)
	w.put(900000, 24) // origin pointer beyond a level 9 block
	w.put(0x1, 3)
	w.put(bzEndMagic, 48)
	w.put(0x12345678, 32) // not the stream's checksum
	w.put(0xabcdef, 29)
	real := w.n
	w.put(bzEndMagic, 48)
	w.put(0xcafe, 32)
	w.put(0, int(-w.n&7))
	s := &bzScanner{r: bytes.NewReader(w.b), level: '9', crc: 0xcafe}
	if got, err := s.find(0); err != nil || got != real {
		t.Errorf("find = %d, %v; want the end marker at bit %d", got, err, real)
	}
	// Followed by a new stream, an end magic counts whatever its checksum.
	w.put(uint64('B')<<24|uint64('Z')<<16|uint64('h')<<8|'9', 32)
	w.put(bzEndMagic, 48)
	w.put(0, 32)
	s = &bzScanner{r: bytes.NewReader(w.b), level: '9', crc: 1}
	if got, err := s.find(0); err != nil || got != real {
		t.Errorf("find before a stream header = %d, %v; want %d", got, err, real)
	}
}

// TestBzip2ParallelReadsAll: the scanner reads the source once and to its end, so
// the digest the pipeline computes covers every byte.
func TestBzip2ParallelReadsAll(t *testing.T) {
	src := bz2(t, imageLike(2<<20, 5), 9)
	r := &countReader{r: bytes.NewReader(src)}
	s := newBzScanner(r)
	if _, err := s.head(); err != nil {
		t.Fatal(err)
	}
	if err := bzip2Parallel(context.Background(), s, newMemSink(2<<20)); err != nil {
		t.Fatal(err)
	}
	if n, _ := io.Copy(io.Discard, r); r.n-n != int64(len(src)) || n != 0 {
		t.Errorf("read %d of %d bytes, %d left", r.n-n, len(src), n)
	}
}

// TestBzip2ParallelDroppedBlock: a stream missing a block, each remaining block
// intact, fails on the stream's combined checksum.
func TestBzip2ParallelDroppedBlock(t *testing.T) {
	data := imageLike(4<<20, 6)
	good := bz2(t, data, 1)
	s := newBzScanner(bytes.NewReader(good))
	var starts []int64 // bit offsets of the blocks
	var eos int64      // and of the end marker
	for {
		p := max(s.pos, 32)
		if _, err := s.next(); err == io.EOF {
			eos = p
			break
		} else if err != nil {
			t.Fatal(err)
		}
		starts = append(starts, p)
	}
	if len(starts) < 3 {
		t.Fatalf("%d blocks, want at least 3", len(starts))
	}
	var w bitWriter
	bits := func(from, to int64) {
		for p := from; p < to; p++ {
			w.put(uint64(good[p>>3]>>(7-p&7)&1), 1)
		}
	}
	bits(0, starts[1])
	bits(starts[2], eos+80)
	w.put(0, int(-w.n&7))
	if _, err := bzDecode(w.b, len(data)); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("a block dropped: %v, want a checksum mismatch", err)
	}
}
