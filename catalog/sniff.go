package catalog

import (
	"bytes"
	"strings"
)

// Formats, in the vocabulary of the catalog's format field.
const (
	FormatRaw   = "img"
	FormatGzip  = "img.gz"
	FormatXz    = "img.xz"
	FormatZstd  = "img.zst"
	FormatBzip2 = "img.bz2"
	FormatQcow2 = "qcow2"
)

// sniffHead is how many leading bytes sniffFormat wants: enough to reach the
// ISO 9660 volume descriptor at 32769.
const sniffHead = 32774

// sniffFormat names the format of an image from its first bytes (docs/architecture.md
// pipeline step 3). Compressed formats and qcow2 are known by their magic; a raw
// image has none, so it is recognised by a partition table (MBR 55 aa, GPT "EFI
// PART") or an ISO 9660 descriptor. It returns "" for anything else.
func sniffFormat(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return FormatGzip
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		return FormatXz
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return FormatZstd
	case bytes.HasPrefix(head, []byte("BZh")):
		return FormatBzip2
	case bytes.HasPrefix(head, []byte{'Q', 'F', 'I', 0xfb}):
		return FormatQcow2
	case len(head) >= 512 && head[510] == 0x55 && head[511] == 0xaa:
		return FormatRaw
	case len(head) >= 520 && string(head[512:520]) == "EFI PART":
		return FormatRaw
	case len(head) >= 32774 && string(head[32769:32774]) == "CD001":
		return FormatRaw
	}
	return ""
}

// formatFromName is the format the file name's suffix suggests, "" when it
// suggests none.
func formatFromName(name string) string {
	n := strings.ToLower(name)
	switch {
	case strings.HasSuffix(n, ".gz"):
		return FormatGzip
	case strings.HasSuffix(n, ".xz"):
		return FormatXz
	case strings.HasSuffix(n, ".zst") || strings.HasSuffix(n, ".zstd"):
		return FormatZstd
	case strings.HasSuffix(n, ".bz2"):
		return FormatBzip2
	case strings.HasSuffix(n, ".qcow2") || strings.HasSuffix(n, ".qcow"):
		return FormatQcow2
	case strings.HasSuffix(n, ".img") || strings.HasSuffix(n, ".raw") || strings.HasSuffix(n, ".iso") || strings.HasSuffix(n, ".bin"):
		return FormatRaw
	}
	return ""
}

// sidecarSuffixes end the names of files that describe an image rather than
// hold one (docs/catalog.md, oras:// sources).
var sidecarSuffixes = []string{".sha256", ".sha512", ".sig", ".asc", ".pem", ".cert", ".sbom", ".att", ".json"}

func isSidecar(name string) bool {
	n := strings.ToLower(name)
	for _, s := range sidecarSuffixes {
		if strings.HasSuffix(n, s) {
			return true
		}
	}
	return false
}
