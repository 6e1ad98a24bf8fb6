package disks

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"bty/units"
)

// Level is how far a disk may be written.
type Level int

const (
	OK      Level = iota // may be written
	Confirm              // may be written once the user types its name
	Refused              // never written
)

func (l Level) String() string {
	switch l {
	case OK:
		return "ok"
	case Confirm:
		return "confirm"
	case Refused:
		return "refused"
	}
	return fmt.Sprintf("Level(%d)", int(l))
}

// MarshalText writes the level as "ok", "confirm" or "refused".
func (l Level) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// Verdict is a disk's level with the reasons for it: every refusal for Refused,
// the reason to confirm for Confirm, none for OK.
type Verdict struct {
	Level   Level    `json:"level"`
	Reasons []string `json:"reasons"`
}

// Check is what Verdict knows about the flash to come. The zero value asks only
// about the disk itself.
type Check struct {
	// ImageSize is the number of bytes the image occupies on the disk; 0 means
	// unknown and skips the size check.
	ImageSize int64
	// ImagePath is the local image file (or device) being flashed; the disk that
	// holds it is refused. "" means the source is not local.
	ImagePath string
	// ImageRoot is the mounted image root; the disk that holds it is the live
	// medium and refused. "" means none.
	ImageRoot string
}

// systemMounts are the mount points of the running system.
var systemMounts = []string{"/", "/boot", "/boot/efi", "/usr", "/var"}

// Verdict applies the safety model of docs/architecture.md to the disk (see doc.go).
func (d Disk) Verdict(c Check) Verdict {
	var rs []string
	add := func(format string, args ...any) { rs = append(rs, fmt.Sprintf(format, args...)) }

	// Mounts and swap, of the whole disk first, then of each partition.
	type node struct {
		what    string // "vda", "partition sda1"
		name    string
		mounts  []Mount
		swap    []string
		holders []Holder
	}
	nodes := []node{{d.Name, d.Name, d.Mounts, d.Swap, d.Holders}}
	for _, p := range d.Partitions {
		nodes = append(nodes, node{"partition " + p.Name, p.Name, p.Mounts, p.Swap, p.Holders})
	}
	for _, n := range nodes {
		for _, m := range n.mounts {
			if slices.Contains(systemMounts, m.Path) {
				add("holds the running system (%s is mounted from %s)", m.Path, m.Device)
			}
		}
		for _, s := range n.swap {
			if strings.HasPrefix(s, "/") {
				add("holds the running system (swap file %s is on %s)", s, n.name)
			} else {
				add("holds the running system (active swap on %s)", s)
			}
		}
	}
	if d.LiveMedium {
		add("holds the live medium (%s is mounted from it)", liveMedium)
	}
	if c.ImageRoot != "" && d.holds(c.ImageRoot) {
		add("holds the live medium (image root %s is on it)", c.ImageRoot)
	}
	for _, n := range nodes {
		var at []string
		for _, m := range n.mounts {
			if slices.Contains(systemMounts, m.Path) || m.Path == liveMedium {
				continue // said above
			}
			s := m.Path
			if m.Device != n.name {
				s += " (through " + m.Device + ")"
			}
			at = append(at, s)
		}
		if len(at) > 0 {
			add("%s is mounted at %s", n.what, strings.Join(at, ", "))
		}
		if len(n.holders) > 0 {
			var hs []string
			for _, h := range n.holders {
				hs = append(hs, h.String())
			}
			add("%s is held by %s", n.what, strings.Join(hs, ", "))
		}
	}
	switch d.EMMCArea {
	case "boot":
		add("read-only (eMMC boot partition)")
	case "rpmb":
		add("read-only (eMMC RPMB partition)")
	default:
		if d.ReadOnly {
			add("read-only")
		}
	}
	if c.ImagePath != "" {
		img := cleanPath(c.ImagePath)
		switch {
		case d.BackingFile != "" && cleanPath(d.BackingFile) == img:
			add("is backed by the image file being flashed (%s)", img)
		case d.holds(img):
			add("holds the image file being flashed (%s)", img)
		}
	}
	switch {
	case d.SizeBytes == 0:
		add("no medium (size 0)")
	case c.ImageSize > d.SizeBytes:
		need, have := units.Bytes(c.ImageSize), units.Bytes(d.SizeBytes)
		if need == have {
			need, have = fmt.Sprintf("%d bytes", c.ImageSize), fmt.Sprintf("%d bytes", d.SizeBytes)
		}
		add("too small: image needs %s, disk has %s", need, have)
	}
	if len(rs) > 0 {
		return Verdict{Level: Refused, Reasons: rs}
	}
	if !d.Removable {
		return Verdict{Level: Confirm, Reasons: []string{"non-removable: type its name to confirm"}}
	}
	return Verdict{Level: OK, Reasons: []string{}}
}

// String names a holder for a reason: "dm-0 (dm-crypt cryptdata)".
func (h Holder) String() string {
	var extra []string
	if h.Kind != "" {
		extra = append(extra, h.Kind)
	}
	if h.Mapper != "" {
		extra = append(extra, h.Mapper)
	}
	if len(extra) == 0 {
		return h.Name
	}
	return h.Name + " (" + strings.Join(extra, " ") + ")"
}

// holds reports whether path is on this disk: it names the disk or a device on
// it, or the file system holding it is mounted from the disk or a device on it.
func (d Disk) holds(path string) bool {
	path = cleanPath(path)
	if n, ok := strings.CutPrefix(path, "/dev/"); ok && d.members[n] {
		return true
	}
	m, ok := holding(d.mounts, path)
	return ok && m.name != "" && d.members[m.name]
}

// cleanPath makes a path absolute and resolves its symlinks when it exists, so
// that it compares with mount points and loop backing files.
func cleanPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		p = a
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		p = r
	}
	return p
}
