package wire

import (
	"fmt"
	"strings"
)

// NormalizeMAC accepts a MAC in any case with ':' or '-' between six pairs of
// hex digits and returns it as aa:bb:cc:dd:ee:ff. Anything else (no
// separators, dots, other lengths) is an error, as on bty-web.
func NormalizeMAC(s string) (string, error) {
	m := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), "-", ":"))
	parts := strings.Split(m, ":")
	ok := len(parts) == 6
	for _, p := range parts {
		ok = ok && len(p) == 2 && isHex(p)
	}
	if !ok {
		return "", fmt.Errorf("invalid MAC %q: write six hex pairs like aa:bb:cc:dd:ee:ff or aa-bb-cc-dd-ee-ff", s)
	}
	return m, nil
}

// HexHyp writes a normalised MAC as iPXE's ${mac:hexhyp} does: aa-bb-cc-dd-ee-ff.
func HexHyp(mac string) string { return strings.ReplaceAll(mac, ":", "-") }

func isHex(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// NormalizeSHA256 trims and lower-cases a sha256 written as hex; ok is false
// unless the result is 64 hex digits. (catalog.NormalizeSHA256 is the same
// rule for catalogs; this leaf cannot import it.)
func NormalizeSHA256(s string) (string, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	return s, len(s) == 64 && isHex(s)
}
