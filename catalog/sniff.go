package catalog

import (
	"strings"

	"bty/format"
	"bty/gpt"
)

// sniffHead is how many leading bytes sniffFormat wants: enough to reach the
// ISO 9660 volume descriptor at 32769.
const sniffHead = 32774

// sniffFormat names the format of an image from its first bytes (docs/architecture.md
// pipeline step 3). Compressed formats and qcow2 are known by their magic; a raw
// image has none, so it is recognised by a partition table (MBR 55 aa, GPT "EFI
// PART") or an ISO 9660 descriptor. It returns "" for anything else.
func sniffFormat(head []byte) format.Format {
	if f := format.Magic(head); f != "" {
		return f
	}
	switch {
	case len(head) >= 512 && head[510] == 0x55 && head[511] == 0xaa:
		return format.Raw
	case len(head) >= 520 && string(head[512:520]) == gpt.Signature:
		return format.Raw
	case len(head) >= 32774 && string(head[32769:32774]) == "CD001":
		return format.Raw
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
