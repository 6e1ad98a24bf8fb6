package lzma2

import (
	"bytes"
	"io"
	"os"
	"testing"
)

// BenchmarkDecode decodes LZMA2_BENCH (a raw LZMA2 file, xz --format=raw
// --lzma2=preset=6) or 32 MiB of sample data compressed the same way.
func BenchmarkDecode(b *testing.B) {
	var comp []byte
	if f := os.Getenv("LZMA2_BENCH"); f != "" {
		var err error
		if comp, err = os.ReadFile(f); err != nil {
			b.Fatal(err)
		}
	} else {
		comp = xzRaw(b, sample(32<<20, 3), "preset=6")
	}
	z, err := NewReader(bytes.NewReader(comp), 8<<20)
	if err != nil {
		b.Fatal(err)
	}
	n, err := z.WriteTo(io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(n)
	b.ResetTimer()
	for range b.N {
		z.Reset(bytes.NewReader(comp), 8<<20)
		if _, err := z.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
