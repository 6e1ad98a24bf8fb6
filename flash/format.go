package flash

import (
	"bytes"
	"context"
	"io"
	"strings"
)

// Format is an image container or compression, detected from magic bytes.
type Format string

const (
	Raw   Format = "raw"
	Gzip  Format = "gzip"
	Xz    Format = "xz"
	Zstd  Format = "zstd"
	Bzip2 Format = "bzip2"
	Qcow2 Format = "qcow2"
)

// prober describes one format: how to recognise it, what names hint at it, how to
// decode it and, where the container says so, how large the decoded image is.
// One file per format declares its prober.
type prober struct {
	format   Format
	match    func(head []byte) bool
	suffixes []string // name suffixes that hint at this format, lower-case
	// decode wraps the stream; nil for raw and qcow2 (qcow2 is not a stream).
	decode func(r io.Reader) (io.Reader, error)
	// size returns the decoded size read from the container, or -1; exact is
	// false when n is only a lower bound. ra reads the source at random
	// offsets; srcSize is the source size (-1 unknown).
	size func(ctx context.Context, head []byte, ra io.ReaderAt, srcSize int64) (n int64, exact bool)
}

// probers in the order they are tried; raw matches everything and comes last.
var probers = []prober{gzipProber, xzProber, zstdProber, bzip2Prober, qcow2Prober, rawProber}

// sniffLen is how many leading bytes Sniff needs to decide.
const sniffLen = 512

// Sniff names the format of a stream from its first bytes.
func Sniff(head []byte) Format { return probeOf(head).format }

func probeOf(head []byte) prober {
	for _, p := range probers {
		if p.match(head) {
			return p
		}
	}
	return rawProber
}

// FormatFromName is the format a file name or URL suggests by its suffix, or ""
// when the suffix says nothing. It also accepts the catalog's format names
// ("img", "img.gz", "img.xz", "img.zst", "img.bz2", "qcow2").
func FormatFromName(name string) Format {
	name = strings.ToLower(name)
	if i := strings.IndexAny(name, "?#"); i >= 0 && strings.Contains(name, "://") {
		name = name[:i]
	}
	for _, p := range probers {
		for _, s := range p.suffixes {
			if name == strings.TrimPrefix(s, ".") || strings.HasSuffix(name, s) {
				return p.format
			}
		}
	}
	return ""
}

var rawProber = prober{
	format:   Raw,
	match:    func([]byte) bool { return true },
	suffixes: []string{".img", ".raw", ".iso", ".bin"},
	size: func(_ context.Context, _ []byte, _ io.ReaderAt, srcSize int64) (int64, bool) {
		return srcSize, srcSize >= 0
	},
}

// isTar reports whether decoded bytes start a tar archive (POSIX or GNU magic at
// offset 257).
func isTar(head []byte) bool {
	return len(head) >= 263 && bytes.Equal(head[257:262], []byte("ustar"))
}

func hasPrefix(head []byte, magic string) bool { return bytes.HasPrefix(head, []byte(magic)) }
