package flash

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"os/exec"
	"testing"

	"github.com/klauspost/compress/zstd"

	"bty/internal/need"
)

// zstdTestData is a small disk-like image: runs of zeros and of one other
// byte long enough to become RLE blocks, random bytes, text, and an odd end.
func zstdTestData() []byte {
	rng := rand.New(rand.NewPCG(7, 7))
	var b []byte
	b = append(b, bytes.Repeat([]byte("bty zstd test: text that compresses. "), 3000)...)
	b = append(b, make([]byte, 700<<10)...)
	b = append(b, bytes.Repeat([]byte{0xaa}, 300<<10)...)
	for range 40 << 10 {
		b = binary.LittleEndian.AppendUint64(b, rng.Uint64())
	}
	b = append(b, make([]byte, 129<<10+7)...)
	return append(b, "end"...)
}

// zstdSkippable is a skippable frame holding payload.
func zstdSkippable(payload []byte) []byte {
	return append(binary.LittleEndian.AppendUint32([]byte{0x50, 0x2a, 0x4d, 0x18}, uint32(len(payload))), payload...)
}

type zstdStream struct {
	name     string
	in, want []byte
	rle      bool
}

// zstdStreams are data compressed the ways zstd files come: zstd at several
// levels and options, several frames, a skippable frame first, and
// klauspost's own encoder; each with the bytes it decodes to and whether it
// holds RLE blocks (zstd writes a block of one byte as one; klauspost's
// encoder does not).
func zstdStreams(t testing.TB, data []byte) []zstdStream {
	t.Helper()
	cli := func(args ...string) []byte {
		cmd := exec.Command("zstd", append([]string{"-q", "-c"}, args...)...)
		cmd.Stdin = bytes.NewReader(data)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("zstd %v: %v", args, err)
		}
		return out
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(false))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	def := cli()
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	return []zstdStream{
		{"zstd", def, data, true},
		{"zstd -1 --no-check", cli("-1", "--no-check"), data, true},
		{"zstd -19 --long=27", cli("-19", "--long=27"), data, true},
		{"zstd -T2 --block-size", cli("-T2", "--block-size=65536"), data, true},
		{"zstd --no-content-size", cli("--no-content-size"), data, true},
		{"two frames", cat(cli("-1"), def), cat(data, data), true},
		{"skippable frame first", cat(zstdSkippable([]byte("pzstd")), def), data, true},
		{"klauspost, no checksum", enc.EncodeAll(data, nil), data, false},
		{"klauspost, second frame", cat(enc.EncodeAll(data[:1000], nil), enc.EncodeAll(data, nil)), cat(data[:1000], data), false},
	}
}

// TestZstdRawRLE: the stream bty hands the decoder has no RLE blocks left,
// is still a valid zstd stream (zstd -dc reads it), and decodes to the image.
func TestZstdRawRLE(t *testing.T) {
	need.Tools(t, "zstd")
	for _, tc := range zstdStreams(t, zstdTestData()) {
		t.Run(tc.name, func(t *testing.T) {
			out, err := io.ReadAll(newZstdRawRLE(bytes.NewReader(tc.in)))
			if err != nil {
				t.Fatalf("rewriting: %v", err)
			}
			// The runs' whole blocks (at least 512 KiB) now travel as raw blocks.
			if grown := len(out) - len(tc.in); tc.rle && grown < 512<<10 {
				t.Errorf("the rewritten stream is %d bytes longer than the input, want at least 512 KiB: RLE blocks left", grown)
			}
			cmd := exec.Command("zstd", "-dc")
			cmd.Stdin = bytes.NewReader(out)
			ref, err := cmd.Output()
			if err != nil || !bytes.Equal(ref, tc.want) {
				t.Errorf("zstd -dc of the rewritten stream: %d bytes, equal %v, err %v", len(ref), bytes.Equal(ref, tc.want), err)
			}
			d, err := zstd.NewReader(newZstdRawRLE(bytes.NewReader(tc.in)))
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			got, err := io.ReadAll(d)
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Errorf("decoded through the rewrite: %d bytes, equal %v, err %v", len(got), bytes.Equal(got, tc.want), err)
			}
		})
	}
}

// zstdDecodeMax decodes src with klauspost's decoder, as much as the fuzz
// targets allow.
func zstdDecodeMax(r io.Reader) ([]byte, bool, error) {
	d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(8<<20), zstd.WithDecoderMaxMemory(2*fuzzMaxOut))
	if err != nil {
		return nil, false, err
	}
	defer d.Close()
	return readMax(d)
}

// FuzzZstdRawRLE: any input decodes to the same bytes through the rewrite as
// without it, or fails both ways; the rewrite itself never panics or hangs.
func FuzzZstdRawRLE(f *testing.F) {
	data := zstdTestData()[:200<<10] // text and the start of a zero run
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		f.Fatal(err)
	}
	one := enc.EncodeAll(data, nil)
	enc.Close()
	for _, s := range [][]byte{
		one,
		append(zstdSkippable([]byte("x")), one...),
		append(append([]byte{}, one...), one...),
		one[:len(one)-3], // inside the checksum
		append(append([]byte{}, one...), "trailing"...),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		got, full, err := zstdDecodeMax(newZstdRawRLE(bytes.NewReader(src)))
		want, wfull, werr := zstdDecodeMax(bytes.NewReader(src))
		switch {
		case full || wfull:
		case err == nil && werr == nil && !bytes.Equal(got, want):
			t.Fatalf("through the rewrite %d bytes, without %d: they differ", len(got), len(want))
		case (err == nil) != (werr == nil):
			t.Fatalf("through the rewrite: %v; without: %v", err, werr)
		}
	})
}
