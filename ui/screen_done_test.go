package ui

import (
	"strings"
	"testing"

	"github.com/charmbracelet/x/ansi"

	"bty/flash"
	"bty/format"
)

// The done screen says whether the digest was computed and checked: a raw
// image flashed without an expected digest was not hashed, and the screen
// says so rather than showing an empty digest.
func TestDoneScreenDigest(t *testing.T) {
	for _, tc := range []struct {
		name string
		res  flash.Result
		want []string
	}{
		{"raw, no digest", flash.Result{Format: format.Raw, SHA256Skipped: true}, []string{"not computed", "a raw image is hashed only to check one"}},
		{"gzip, no digest", flash.Result{Format: format.Gzip, SHA256: fakeDigest}, []string{fakeDigest, "computed, not checked"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := doneScreen{res: tc.res, width: 120, height: 40}
			view := ansi.Strip(s.View(PlainStyles()))
			for _, w := range tc.want {
				if !strings.Contains(view, w) {
					t.Errorf("the done screen does not say %q:\n%s", w, view)
				}
			}
		})
	}
}
