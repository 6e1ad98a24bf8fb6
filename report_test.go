package main

import (
	"testing"
	"time"

	"bty/flash"
)

// TestProgressText: the terminal's progress line gives a percentage of the
// image only when its decoded size is known; otherwise the decoded bytes and,
// labelled, the part of the source read. Sizes and rates in IEC units.
func TestProgressText(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name string
		p    flash.Progress
		want string
	}{
		{"opening", flash.Progress{Phase: flash.PhaseOpening, SourceTotal: -1, ImageSize: -1}, "opening  "},
		{"size known",
			flash.Progress{Phase: flash.PhaseWriting, SourceBytes: 10 * mib, SourceTotal: 40 * mib, Written: 30 * mib, Zeroed: 10 * mib, ImageSize: 160 * mib, Rate: 20 * mib, ETA: 6 * time.Second},
			"writing    25%  40.0 MiB / 160 MiB  20.0 MiB/s  ETA 6s"},
		{"gzip, size unknown",
			flash.Progress{Phase: flash.PhaseWriting, SourceBytes: 10 * mib, SourceTotal: 40 * mib, Written: 30 * mib, Zeroed: 10 * mib, ImageSize: -1, Rate: 20 * mib},
			"writing    40.0 MiB  20.0 MiB/s  (source 25% read)"},
		{"pipe, nothing known",
			flash.Progress{Phase: flash.PhaseWriting, SourceBytes: 10 * mib, SourceTotal: -1, Written: 30 * mib, ImageSize: -1, Rate: 20 * mib},
			"writing    30.0 MiB  20.0 MiB/s"},
		{"verifying",
			flash.Progress{Phase: flash.PhaseVerifying, SourceBytes: 40 * mib, SourceTotal: 40 * mib, Written: 160 * mib, Verified: 80 * mib, ImageSize: 160 * mib, Rate: 20 * mib},
			"verifying  50%  80.0 MiB / 160 MiB  20.0 MiB/s"},
	} {
		if got := progressText(tc.p); got != tc.want {
			t.Errorf("%s: progressText = %q, want %q", tc.name, got, tc.want)
		}
	}
}
