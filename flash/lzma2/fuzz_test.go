package lzma2

import (
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"testing"

	"github.com/ulikunitz/xz/lzma"
)

// fuzzLimit bounds the output compared per input: a few bytes of chunk
// headers can name megabytes.
const fuzzLimit = 1 << 20

var fuzzWindows = []int{4 << 10, 64 << 10, 1 << 20}

// FuzzDecode decodes the same LZMA2 sequence with this package and with
// ulikunitz/xz/lzma: both must give the same bytes, or both fail. Where they
// disagree, xz itself (xz --format=raw) decides, and this package must agree
// with it: ulikunitz accepts a few streams that xz rejects (bytes left over in
// a chunk, lc+lp > 4, an end marker at the end of a chunk).
//
//	go test ./flash/lzma2 -run XXX -fuzz FuzzDecode -fuzztime 30m
func FuzzDecode(f *testing.F) {
	for i, opts := range []string{"preset=0", "preset=6", "dict=4KiB,lc=0,lp=4,pb=0", "lc=4,lp=0,pb=4", "mode=fast,nice=8"} {
		data := sample(100<<10, uint64(i))
		if i == 0 {
			data = bytes.Repeat([]byte("bty "), 20000)
		}
		if _, err := exec.LookPath("xz"); err == nil {
			f.Add(byte(i), xzRaw(f, data, opts))
		}
	}
	var b bytes.Buffer
	w, _ := lzma.Writer2Config{DictCap: 64 << 10}.NewWriter2(&b)
	w.Write(sample(50<<10, 9))
	w.Close()
	f.Add(byte(1), b.Bytes())
	f.Add(byte(0), []byte{0})
	f.Add(byte(0), []byte{1, 0, 3, 'a', 'b', 'c', 'd', 2, 0, 0, 'e', 0})
	f.Fuzz(func(t *testing.T, w byte, in []byte) {
		window := fuzzWindows[int(w)%len(fuzzWindows)]
		z, err := NewReader(bytes.NewReader(in), window)
		if err != nil {
			t.Fatal(err)
		}
		got, gotErr := io.ReadAll(io.LimitReader(z, fuzzLimit))
		ur, err := lzma.Reader2Config{DictCap: window}.NewReader2(bytes.NewReader(in))
		var want []byte
		wantErr := err
		if err == nil {
			want, wantErr = io.ReadAll(io.LimitReader(ur, fuzzLimit))
		}
		if (gotErr == nil) == (wantErr == nil) && (gotErr != nil || bytes.Equal(got, want)) {
			return
		}
		// They disagree: ask xz.
		xin := in
		if gotErr == nil && len(got) < fuzzLimit {
			xin = in[:z.InputOffset()]
		}
		xout, xerr := xzRawDecode(t, xin, window)
		if len(got) == fuzzLimit || len(xout) >= fuzzLimit {
			xout = xout[:min(len(xout), fuzzLimit)]
			if bytes.Equal(got, xout) {
				return
			}
		}
		if (gotErr == nil) != (xerr == nil) || gotErr == nil && !bytes.Equal(got, xout) {
			t.Fatalf("window %d: this package: %d bytes, %v; ulikunitz: %d bytes, %v; xz: %d bytes, %v", window, len(got), gotErr, len(want), wantErr, len(xout), xerr)
		}
	})
}

// xzRawDecode decodes a raw LZMA2 stream with xz.
func xzRawDecode(t *testing.T, in []byte, window int) ([]byte, error) {
	if _, err := exec.LookPath("xz"); err != nil {
		t.Skip("xz not installed (Debian package xz-utils): cannot settle a disagreement with ulikunitz")
	}
	cmd := exec.Command("xz", "--format=raw", fmt.Sprintf("--lzma2=dict=%d", window), "-dc")
	cmd.Stdin = bytes.NewReader(in)
	var out bytes.Buffer
	cmd.Stdout = &out
	err := cmd.Run()
	return out.Bytes(), err
}
