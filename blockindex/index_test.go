package blockindex

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// image returns n pseudo-random bytes from seed, with a run of zeros.
func image(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	if n > 3*MinBlockSize {
		clear(b[MinBlockSize : 3*MinBlockSize])
	}
	return b
}

func TestComputeMatchesBlocks(t *testing.T) {
	for _, n := range []int{0, 1, MinBlockSize - 1, MinBlockSize, MinBlockSize + 1, 5*MinBlockSize + 512} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			img := image(uint64(n), n)
			var seen []int
			ix, err := Compute(bytes.NewReader(img), MinBlockSize, func(i int, sum [32]byte, b []byte) error {
				seen = append(seen, i)
				if sum != sha256.Sum256(b) {
					t.Errorf("block %d: sum is not the sha256 of the block", i)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			var want [][32]byte
			for off := 0; off < n; off += MinBlockSize {
				want = append(want, sha256.Sum256(img[off:min(off+MinBlockSize, n)]))
			}
			if diff := cmp.Diff(want, ix.Blocks); diff != "" {
				t.Errorf("Compute(%d bytes).Blocks differ from the image's blocks (-want +got):\n%s", n, diff)
			}
			if len(seen) != len(want) {
				t.Errorf("each called %d times, want %d", len(seen), len(want))
			}
			if ix.Length != int64(n) || ix.Digest != fmt.Sprintf("sha256:%x", sha256.Sum256(img)) {
				t.Errorf("Compute: length %d digest %s, want %d sha256:%x", ix.Length, ix.Digest, n, sha256.Sum256(img))
			}
			for i := range ix.Blocks {
				if got, want := ix.Len(i), int64(min(MinBlockSize, n-i*MinBlockSize)); got != want {
					t.Errorf("Len(%d) = %d, want %d", i, got, want)
				}
			}
		})
	}
}

func TestComputeRefusesBadBlockSize(t *testing.T) {
	for _, bs := range []int64{0, 512, MinBlockSize + 1, 3 << 20, MaxBlockSize * 2} {
		if _, err := Compute(bytes.NewReader(nil), bs, nil); err == nil || !strings.Contains(err.Error(), "block size") {
			t.Errorf("Compute(block size %d) = %v, want an error about the block size", bs, err)
		}
	}
}

func encode(t testing.TB, ix *Index) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := ix.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 3*MinBlockSize + 7} {
		ix, err := Compute(bytes.NewReader(image(1, n)), MinBlockSize, nil)
		if err != nil {
			t.Fatal(err)
		}
		enc := encode(t, ix)
		if want := headerLen + 32*len(ix.Blocks) + trailerLen; len(enc) != want {
			t.Errorf("encoded %d blocks in %d bytes, want %d", len(ix.Blocks), len(enc), want)
		}
		got, err := Decode(bytes.NewReader(enc))
		if err != nil {
			t.Fatalf("Decode(Encode(index of %d bytes)): %v", n, err)
		}
		if diff := cmp.Diff(ix, got); diff != "" {
			t.Errorf("Decode(Encode(ix)) differs (-ix +got):\n%s", diff)
		}
	}
}

func TestDecodeRefuses(t *testing.T) {
	ix, err := Compute(bytes.NewReader(image(2, 3*MinBlockSize+100)), MinBlockSize, nil)
	if err != nil {
		t.Fatal(err)
	}
	good := encode(t, ix)
	// resum rewrites the trailer so that only the edited field is wrong.
	resum := func(b []byte) []byte {
		s := sha256.Sum256(b[:len(b)-trailerLen])
		copy(b[len(b)-trailerLen:], s[:])
		return b
	}
	edit := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return resum(b)
	}
	put64 := func(off int, v uint64) []byte {
		return edit(func(b []byte) { binary.LittleEndian.PutUint64(b[off:], v) })
	}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "truncated in the header (0 of 72 bytes)"},
		{"half header", good[:40], "truncated in the header (40 of 72 bytes)"},
		{"truncated digests", good[:headerLen+32+10], "truncated in the block digests (1 of 4)"},
		{"no checksum", good[:len(good)-trailerLen], "truncated in the checksum (0 of 32 bytes)"},
		{"short checksum", good[:len(good)-1], "truncated in the checksum (31 of 32 bytes)"},
		{"trailing bytes", append(bytes.Clone(good), 0), "bytes follow its checksum"},
		{"not an index", append([]byte("PK\x03\x04"), good[4:]...), "not a bty block index"},
		{"version", edit(func(b []byte) { b[8] = 2 }), "version 2: this bty reads version 1"},
		{"flags", edit(func(b []byte) { b[12] = 1 }), "flags 0x1"},
		{"flipped digest bit", func() []byte { b := bytes.Clone(good); b[headerLen+5] ^= 1; return b }(), "checksum does not match"},
		{"flipped length bit", func() []byte { b := bytes.Clone(good); b[24] ^= 1; return b }(), "checksum does not match"},
		{"block size zero", put64(16, 0), "block size 0 is out of bounds"},
		{"block size not a power of two", put64(16, 3*MinBlockSize), "block size 12288 is out of bounds"},
		{"block size huge", put64(16, 1<<40), "out of bounds"},
		{"length huge", put64(24, 1<<62), "image length 4611686018427387904 is larger"},
		{"too many blocks", put64(24, (MaxBlocks+1)*MinBlockSize), "more than 16777216 blocks"},
		{"count below length", put64(64, 3), "3 block digests for 12388 bytes in blocks of 4096: want 4"},
		{"count above length", put64(64, 5), "5 block digests for 12388 bytes in blocks of 4096: want 4"},
		{"oversized claim", func() []byte {
			b := put64(24, MaxBlocks*MinBlockSize)
			binary.LittleEndian.PutUint64(b[64:], MaxBlocks)
			return b
		}(), "truncated in the block digests"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(bytes.NewReader(tt.in))
			if err == nil {
				t.Fatalf("Decode(%s) = %+v, want an error", tt.name, got)
			}
			if !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrCorrupt) {
				t.Errorf("Decode(%s) = %v, want an integrity error containing %q", tt.name, err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("Decode(%s): error %q is not one line", tt.name, err)
			}
		})
	}
}

func TestEncodeRefusesInconsistent(t *testing.T) {
	ix := &Index{BlockSize: MinBlockSize, Length: MinBlockSize + 1, Digest: "sha256:" + strings.Repeat("0", 64), Blocks: make([][32]byte, 1)}
	if err := ix.Encode(&bytes.Buffer{}); err == nil {
		t.Errorf("Encode(1 block for 2 blocks of bytes) succeeded, want an error")
	}
	ix.Blocks, ix.Digest = make([][32]byte, 2), "sha256:ABC"
	if err := ix.Encode(&bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "image digest") {
		t.Errorf("Encode(digest sha256:ABC) = %v, want an error about the digest", err)
	}
}

func TestStoreKeepsBlocksOnce(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	const bs, n = MinBlockSize, 64
	v1 := image(3, n*bs)
	v2 := bytes.Clone(v1)
	copy(v2[10*bs:], image(4, bs)) // one block changed
	v2 = append(v2, image(5, 100)...)

	ix1, st1, err := s.Add(bytes.NewReader(v1), bs)
	if err != nil {
		t.Fatal(err)
	}
	// v1 has two zero blocks (image's run of zeros): stored once.
	if st1.New != n-1 || st1.NewBytes != (n-1)*bs {
		t.Errorf("Add(v1): %d new blocks of %d bytes, want %d of %d", st1.New, st1.NewBytes, n-1, (n-1)*bs)
	}
	_, st2, err := s.Add(bytes.NewReader(v2), bs)
	if err != nil {
		t.Fatal(err)
	}
	if st2.New != 2 || st2.NewBytes != bs+100 {
		t.Errorf("Add(v2): %d new blocks of %d bytes, want the changed block and the tail, 2 of %d", st2.New, st2.NewBytes, bs+100)
	}
	_, st3, err := s.Add(bytes.NewReader(v1), bs)
	if err != nil {
		t.Fatal(err)
	}
	if st3.New != 0 || !st3.IndexPresent || st3.IndexDigest != st1.IndexDigest {
		t.Errorf("Add(v1) again: %+v, want nothing new and the same index", st3)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "sha256", "*"))
	if len(files) != n+1 {
		t.Errorf("the store holds %d block files, want %d (distinct blocks of v1 and v2)", len(files), n+1)
	}
	idx, _ := filepath.Glob(filepath.Join(dir, "*.index"))
	if len(idx) != 2 {
		t.Errorf("the store holds %d indexes, want 2", len(idx))
	}
	for i, sum := range ix1.Blocks {
		b, err := s.Get(sum, ix1.Len(i))
		if err != nil {
			t.Fatalf("Get(block %d): %v", i, err)
		}
		if !bytes.Equal(b, v1[i*bs:(i+1)*bs]) {
			t.Fatalf("Get(block %d) differs from the image's block", i)
		}
	}
	enc, err := os.ReadFile(s.IndexPath([32]byte(mustHex(t, st1.IndexDigest))))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Decode(bytes.NewReader(enc)); err != nil || !cmp.Equal(got, ix1) {
		t.Errorf("the stored index decodes to %v, %v; want v1's index", got, err)
	}
}

func mustHex(t *testing.T, d string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.TrimPrefix(d, "sha256:"))
	if err != nil || len(b) != 32 {
		t.Fatalf("digest %q: %v", d, err)
	}
	return b
}

func TestUnpackRefuses(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	block := image(6, MinBlockSize)
	sum := sha256.Sum256(block)
	if _, err := s.Put(sum, block); err != nil {
		t.Fatal(err)
	}
	packed, err := os.ReadFile(s.BlockPath(sum))
	if err != nil {
		t.Fatal(err)
	}
	other := sha256.Sum256(image(7, MinBlockSize))
	tests := []struct {
		name   string
		packed []byte
		sum    [32]byte
		size   int64
		want   string
	}{
		{"wrong digest", packed, other, MinBlockSize, "its sha256 does not match its name"},
		{"shorter than said", packed, sum, MinBlockSize + 1, "4096 bytes, want 4097"},
		{"longer than said", packed, sum, MinBlockSize - 1, "not a zstd stream of 4095 bytes"},
		{"truncated", packed[:len(packed)/2], sum, MinBlockSize, "not a zstd stream"},
		{"not zstd", block, sum, MinBlockSize, "not a zstd stream"},
		{"huge size", packed, sum, MaxBlockSize + 1, "out of bounds"},
	}
	for _, tt := range tests {
		if _, err := Unpack(tt.packed, tt.sum, tt.size); err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrCorrupt) {
			t.Errorf("Unpack(%s) = %v, want an integrity error containing %q", tt.name, err, tt.want)
		}
	}
	if b, err := Unpack(packed, sum, MinBlockSize); err != nil || !bytes.Equal(b, block) {
		t.Errorf("Unpack(the stored block) = %v, want the block", err)
	}
}

// FuzzDecode: Decode never panics, never allocates far beyond its input, and
// what it accepts encodes back to the same bytes.
func FuzzDecode(f *testing.F) {
	for _, n := range []int{0, 1, 2*MinBlockSize + 3} {
		ix, err := Compute(bytes.NewReader(image(8, n)), MinBlockSize, nil)
		if err != nil {
			f.Fatal(err)
		}
		enc := encode(f, ix)
		f.Add(enc)
		f.Add(enc[:len(enc)-1])
		f.Add(enc[:headerLen])
	}
	f.Add([]byte(magic))
	f.Fuzz(func(t *testing.T, in []byte) {
		ix, err := Decode(bytes.NewReader(in))
		if err != nil {
			return
		}
		if out := encode(t, ix); !bytes.Equal(out, in) {
			t.Errorf("Encode(Decode(in)) != in")
		}
	})
}
