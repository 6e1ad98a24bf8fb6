// Package format names the image formats bty reads, once for every package:
// the one name of each (the --json result's "format"), the catalog's value for
// it (WIRE: img | img.gz | img.xz | img.zst | img.bz2 | qcow2), the name
// suffixes that hint at it, and the magic bytes that decide it.
//
//	head bytes -> Magic -> Gzip | Xz | Zstd | Bzip2 | Qcow2 | "" (no magic: raw, or not an image)
//	"a.img.xz", "img.xz", "xz" -> FromName / Parse -> Xz
//
// It imports nothing of bty's; flash decodes the formats, catalog lists
// them, ui shows them.
package format

import (
	"bytes"
	"strings"
)

// Format is an image container or compression.
type Format string

const (
	Raw   Format = "raw"
	Gzip  Format = "gzip"
	Xz    Format = "xz"
	Zstd  Format = "zstd"
	Bzip2 Format = "bzip2"
	Qcow2 Format = "qcow2"
)

// All lists the formats in the order their magic is tried; Raw, which has
// none, comes last.
var All = []Format{Gzip, Xz, Zstd, Bzip2, Qcow2, Raw}

type spec struct {
	catalog  string              // the catalog's format value
	suffixes []string            // name suffixes that hint at it, lower-case
	magic    func(h []byte) bool // nil for raw
}

var specs = map[Format]spec{
	Gzip:  {"img.gz", []string{".gz", ".gzip"}, func(h []byte) bool { return has(h, "\x1f\x8b") }},
	Xz:    {"img.xz", []string{".xz"}, func(h []byte) bool { return has(h, "\xfd7zXZ\x00") }},
	Zstd:  {"img.zst", []string{".zst", ".zstd"}, isZstd},
	Bzip2: {"img.bz2", []string{".bz2", ".bzip2"}, isBzip2},
	Qcow2: {"qcow2", []string{".qcow2", ".qcow"}, func(h []byte) bool { return has(h, "QFI\xfb") }},
	Raw:   {"img", []string{".img", ".raw", ".iso", ".bin"}, nil},
}

func has(h []byte, magic string) bool { return bytes.HasPrefix(h, []byte(magic)) }

// isZstd: a zstd frame, or a skippable frame first (pzstd writes one).
func isZstd(h []byte) bool {
	return has(h, "\x28\xb5\x2f\xfd") || len(h) >= 4 && h[0]&0xf0 == 0x50 && h[1] == 0x2a && h[2] == 0x4d && h[3] == 0x18
}

// isBzip2: "BZh" and the block size level.
func isBzip2(h []byte) bool { return len(h) >= 4 && has(h, "BZh") && h[3] >= '1' && h[3] <= '9' }

// MagicLen is how many leading bytes Magic needs at most.
const MagicLen = 8

// Magic names the format whose magic bytes start head, or "" when none does
// (a raw image has no magic).
func Magic(head []byte) Format {
	for _, f := range All {
		if m := specs[f].magic; m != nil && m(head) {
			return f
		}
	}
	return ""
}

// Sniff is Magic, with Raw for bytes without a magic.
func Sniff(head []byte) Format {
	if f := Magic(head); f != "" {
		return f
	}
	return Raw
}

// Catalog is the catalog's format value for f: "img.xz" for Xz.
func (f Format) Catalog() string { return specs[f].catalog }

// CatalogValues lists the values of the catalog's format field, in the order
// of All.
func CatalogValues() []string {
	v := make([]string, len(All))
	for i, f := range All {
		v[i] = f.Catalog()
	}
	return v
}

// Parse reads a format's name or its catalog value, in any case ("xz",
// "img.xz", "QCOW2"); "" when it is neither.
func Parse(s string) Format {
	s = strings.ToLower(strings.TrimSpace(s))
	for _, f := range All {
		if s == string(f) || s == specs[f].catalog {
			return f
		}
	}
	return ""
}

// FromName is the format a file name's or URL's suffix suggests ("a.img.xz":
// Xz), or that a format value or a bare suffix names ("img.xz", "xz", "gz");
// "" when it says nothing. A URL's query and fragment are not part of the
// name.
func FromName(name string) Format {
	if f := Parse(name); f != "" {
		return f
	}
	name = strings.ToLower(name)
	if i := strings.IndexAny(name, "?#"); i >= 0 && strings.Contains(name, "://") {
		name = name[:i]
	}
	for _, f := range All {
		for _, s := range specs[f].suffixes {
			if strings.HasSuffix(name, s) || name == s[1:] {
				return f
			}
		}
	}
	return ""
}
