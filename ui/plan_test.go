package ui

import (
	"testing"

	"bty/catalog"
	"bty/flash"
	"bty/format"
)

// TestPlanSizeText: the confirmation says what the flash reads and what it
// writes, and whether the written size is exact, a lower bound or unknown.
func TestPlanSizeText(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name string
		p    plan
		want string
	}{
		{"raw", plan{info: flash.Info{Format: format.Raw, SourceSize: 64 * mib, ImageSize: 64 * mib, Exact: true}}, "64.0 MiB"},
		{"xz from a catalog", plan{entry: catalog.Entry{Size: 312 * mib}, info: flash.Info{Format: format.Xz, SourceSize: 312 * mib, ImageSize: 2048 * mib, Exact: true}},
			"312 MiB to read, 2.0 GiB to write"},
		{"gzip trailer", plan{info: flash.Info{Format: format.Gzip, SourceSize: 3 * mib, ImageSize: 9 * mib}}, "3.0 MiB to read, at least 9.0 MiB to write"},
		{"bzip2", plan{info: flash.Info{Format: format.Bzip2, SourceSize: 3 * mib, ImageSize: -1}}, "3.0 MiB to read, size to write known once decoded"},
		{"not inspected", plan{info: flash.Info{SourceSize: -1, ImageSize: -1}}, "unknown size to read, size to write known once decoded"},
	} {
		if got := tc.p.sizeText(); got != tc.want {
			t.Errorf("%s: sizeText() = %q, want %q", tc.name, got, tc.want)
		}
	}
}
