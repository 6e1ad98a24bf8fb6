package flash

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"testing"

	"github.com/dsnet/compress/bzip2"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"bty/format"
)

// memSource is an image in memory; it opens at any offset, as a file does.
type memSource struct {
	name string
	b    []byte
}

func (s memSource) Name() string { return s.name }
func (s memSource) Open(_ context.Context, off int64) (io.ReadCloser, int64, error) {
	return io.NopCloser(bytes.NewReader(s.b[min(off, int64(len(s.b))):])), int64(len(s.b)), nil
}

func compress(t *testing.T, f format.Format, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	var err error
	switch f {
	case format.Gzip:
		w = gzip.NewWriter(&buf)
	case format.Xz:
		w, err = xz.NewWriter(&buf)
	case format.Zstd:
		w, err = zstd.NewWriter(&buf)
	case format.Bzip2:
		w, err = bzip2.NewWriter(&buf, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	if f == format.Zstd {
		// The streaming writer records no size; EncodeAll does, as zstd does
		// for a file.
		return w.(*zstd.Encoder).EncodeAll(data, nil)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestInspect: the format and the decoded size, exact or a lower bound, as
// each container tells it before decoding.
func TestInspect(t *testing.T) {
	img := bytes.Repeat([]byte("bty inspects "), 300000) // 3.9 MB
	n := int64(len(img))
	small := img[:1000]
	gzipBoth := append(compress(t, format.Gzip, img), compress(t, format.Gzip, small)...)
	badTrailer := compress(t, format.Gzip, small)
	binary.LittleEndian.PutUint32(badTrailer[len(badTrailer)-4:], 0xffffffff)
	for _, tc := range []struct {
		name  string
		b     []byte
		f     format.Format
		size  int64
		exact bool
	}{
		{"raw", img, format.Raw, n, true},
		{"gzip: the trailer is a lower bound", compress(t, format.Gzip, img), format.Gzip, n, false},
		{"gzip of two members: the last one's size", gzipBoth, format.Gzip, 1000, false},
		{"gzip with a trailer larger than deflate allows", badTrailer, format.Gzip, -1, false},
		{"xz: the index", compress(t, format.Xz, img), format.Xz, n, true},
		{"zstd: the frame header", compress(t, format.Zstd, img), format.Zstd, n, true},
		{"bzip2: not recorded", compress(t, format.Bzip2, img), format.Bzip2, -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, err := Inspect(context.Background(), memSource{"x", tc.b}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			want := Info{Format: tc.f, SourceSize: int64(len(tc.b)), ImageSize: tc.size, Exact: tc.exact}
			if info != want {
				t.Errorf("Inspect = %+v, want %+v", info, want)
			}
		})
	}
	if _, err := Inspect(context.Background(), memSource{"empty.img", nil}, Options{}); err == nil {
		t.Errorf("Inspect(empty) = nil error, want one")
	}
}
