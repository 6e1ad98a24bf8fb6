package ui

import (
	"os"
	"strings"

	"bty/catalog"
	"bty/disks"
	"bty/flash"
	"bty/format"
	"bty/units"
)

// plan is what will be flashed where.
type plan struct {
	entry      catalog.Entry // the chosen row; zero for --image
	image      catalog.Resolved
	info       flash.Info           // format and decoded size, as far as known
	sha256     string               // expected digest, "" when unknown
	sha256From catalog.DigestSource // where sha256 comes from
	target     Target
	verify     bool
}

func (p plan) format() string {
	switch {
	case p.info.Format != "": // read from the bytes
		return string(p.info.Format)
	case p.image.Format != "":
		return formatName(p.image.Format)
	case p.entry.Format != "":
		return formatName(p.entry.Format)
	}
	return "from the first bytes, when the flash starts"
}

func (p plan) size() int64 {
	if p.image.Size > 0 {
		return p.image.Size
	}
	return p.entry.Size
}

// sizeText is what the flash reads and what it writes: "312 MiB to read,
// 2.0 GiB to write".
func (p plan) sizeText() string {
	read := p.size()
	if read <= 0 {
		read = p.info.SourceSize
	}
	in := "unknown size to read"
	if read > 0 {
		in = units.Bytes(read) + " to read"
	}
	switch {
	case p.info.ImageSize <= 0:
		return in + ", size to write known once decoded"
	case p.info.Format == format.Raw && p.info.ImageSize == read:
		return units.Bytes(read)
	case p.info.Exact:
		return in + ", " + units.Bytes(p.info.ImageSize) + " to write"
	}
	return in + ", at least " + units.Bytes(p.info.ImageSize) + " to write"
}

func (p plan) from() string {
	if p.entry.From != "" {
		return p.entry.From
	}
	if p.image.Source != nil && strings.Contains(p.image.Source.Name(), "://") {
		return p.image.Source.Name()
	}
	return ""
}

// network reports whether the bytes come over the network (a download bar).
func (p plan) network() bool {
	return p.image.Source != nil && strings.Contains(p.image.Source.Name(), "://")
}

// check is what the disks' verdicts need to know about the image.
func (p plan) check(root string) disks.Check {
	var c disks.Check
	f := p.image.Format
	if f == "" {
		f = p.entry.Format
	}
	if format.Parse(f) == format.Raw {
		c.ImageSize = p.size()
	}
	if p.info.ImageSize > 0 {
		// Exact or a lower bound: either way a smaller disk cannot hold it.
		c.ImageSize = p.info.ImageSize
	}
	c.ImagePath = p.image.Path
	if fi, err := os.Stat(root); root != "" && err == nil && fi.IsDir() {
		c.ImageRoot = root
	}
	return c
}

// leftOn says, naming the target, what a flash that failed in phase leaves
// on it (flash.Flash's order: nothing is written while opening; the first
// and last MiB are zeroed when writing starts; the first MiB is written
// last, while finishing), and whether anything was written.
func leftOn(target string, phase flash.Phase) (string, bool) {
	switch phase {
	case flash.PhaseOpening:
		return "Nothing was written to " + target + ": it holds what it held before.", false
	case flash.PhaseFinishing:
		return target + " was left without a partition table, or with one over an image that did not finish: flash it again before you use it.", true
	case flash.PhaseVerifying, flash.PhaseDone:
		return target + " holds the image, but reading it back failed: do not trust it; flash it again.", true
	}
	return target + " was left without a partition table: it will not boot until it is flashed again.", true
}
