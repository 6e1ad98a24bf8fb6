package catalog

import (
	"errors"
	"fmt"
	"strings"

	"bty/category"
)

// A source that could not be reached or read (network, registry, missing
// file) is in category.ErrSource (exit code 5).
var (
	// ErrNotFound: the server or file system says the thing does not exist;
	// category.ErrSource.
	ErrNotFound = category.New(category.ErrSource, "not found")
	// ErrChanged: the bytes at a URL changed between two attempts (ETag or
	// Last-Modified differ), so a resumed download would splice two versions.
	ErrChanged = errors.New("source changed while downloading")
)

// ErrNotImage: IMG names something that cannot hold an image (a directory, a
// URL of a scheme bty does not read); category.ErrUsage.
var ErrNotImage = category.New(category.ErrUsage, "not an image")

// ErrPending: the catalog lists the image in [[pending_images]]: its server
// has not computed its sha256 yet. It is a source not available yet (exit 5).
var ErrPending = errors.New("its server is still computing its sha256: flash it once the catalog lists the digest (try again in a few minutes; bty images shows when)")

// sourceError is a source failure; Permanent tells the flash engine whether a
// retry could help.
type sourceError struct {
	err       error
	permanent bool
}

func (e *sourceError) Error() string   { return e.err.Error() }
func (e *sourceError) Unwrap() []error { return []error{e.err, category.ErrSource} }
func (e *sourceError) Permanent() bool { return e.permanent }

var (
	// ErrInvalid: a catalog that cannot be used as written (bad TOML, wrong
	// version, a broken entry). Every error carrying it is an *InvalidError.
	// category.ErrUsage.
	ErrInvalid = category.New(category.ErrUsage, "invalid catalog")
)

// Bytes that catalog itself checks and that are not what their digest says
// (a catalog or manifest blob from a registry), or two digests of one image
// that disagree (a catalog's sha256 and the registry's layer digest), so that
// no download could pass verification, are in category.ErrIntegrity. Image bytes
// are verified by the flash engine.

// Problem is one reason a catalog is invalid.
type Problem struct {
	Source string // the catalog as the user named it
	Line   int    // 1-based line of the problem, 0 when unknown
	Entry  string // the entry's name, or "#N" (1-based) when it has none; "" for the whole file
	Msg    string // the field, what is wrong, and the fix
}

// String reads: `catalog.toml line 12: image "x": sha256 is not 64 hex digits: fix or remove it`.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.Source)
	if p.Line > 0 {
		fmt.Fprintf(&b, " line %d", p.Line)
	}
	b.WriteString(": ")
	switch {
	case strings.HasPrefix(p.Entry, "#"):
		fmt.Fprintf(&b, "image %s: ", p.Entry)
	case p.Entry != "":
		fmt.Fprintf(&b, "image %q: ", p.Entry)
	}
	b.WriteString(p.Msg)
	return b.String()
}

// InvalidError lists every problem found in one catalog.
type InvalidError struct {
	Source   string
	Problems []Problem
}

// Error is the first problem, and how many more there are.
func (e *InvalidError) Error() string {
	if len(e.Problems) == 0 {
		return e.Source + ": invalid catalog"
	}
	s := e.Problems[0].String()
	if n := len(e.Problems) - 1; n > 0 {
		s += fmt.Sprintf(" (and %d more: run bty catalog check %s)", n, e.Source)
	}
	return s
}

func (e *InvalidError) Unwrap() error { return ErrInvalid }

// ErrIndex: an oras:// reference names an image index (several platforms)
// where one image is needed; the message lists the platform digests. Maps to
// category.ErrUsage.
var ErrIndex = category.New(category.ErrUsage, "an image index (several platforms), not one image")
