package disks

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Resolve finds the disk a DISK argument names: a device path (/dev/sda), a link
// to one (/dev/disk/by-id/..., followed inside Roots.Dev), or serial:S, which
// matches the one disk whose serial is exactly S (a disk without a serial never
// matches; an eMMC's boot areas, which repeat the card's serial, are skipped).
// Errors wrap ErrNotFound, ErrAmbiguous or ErrBadSpec. A regular file as DISK
// (an image being produced) is the caller's to handle before Resolve.
func Resolve(r Roots, spec string) (Disk, error) {
	if err := checkSpec(spec); err != nil {
		return Disk{}, err
	}
	ds, err := List(r)
	if err != nil {
		return Disk{}, err
	}
	return Find(r, ds, spec)
}

// checkSpec refuses what no list of disks can match.
func checkSpec(spec string) error {
	if serial, ok := strings.CutPrefix(spec, "serial:"); ok {
		if serial == "" {
			return fmt.Errorf("%q: empty serial: %w", spec, ErrBadSpec)
		}
		return nil
	}
	if !strings.HasPrefix(filepath.Clean(spec), "/dev/") {
		return fmt.Errorf("%q: want a /dev path, a /dev/disk/by-id link or serial:SERIAL: %w", spec, ErrBadSpec)
	}
	return nil
}

// Find is Resolve over disks already listed: the one of ds that the DISK
// argument spec names, by the same rules. The wizard applies --disk with it
// to the disks it shows.
func Find(r Roots, ds []Disk, spec string) (Disk, error) {
	if err := checkSpec(spec); err != nil {
		return Disk{}, err
	}
	if serial, ok := strings.CutPrefix(spec, "serial:"); ok {
		var match []Disk
		for _, d := range ds {
			// The boot and RPMB areas of an eMMC report the card's serial, but
			// the card is the disk the serial names.
			if d.Serial != "" && d.Serial == serial && d.EMMCArea == "" {
				match = append(match, d)
			}
		}
		switch len(match) {
		case 0:
			return Disk{}, fmt.Errorf("serial %q: no disk has it: %w", serial, ErrNotFound)
		case 1:
			return match[0], nil
		}
		var paths []string
		for _, d := range match {
			paths = append(paths, d.Path)
		}
		return Disk{}, fmt.Errorf("serial %q: %d disks have it (%s): %w", serial, len(match), strings.Join(paths, ", "), ErrAmbiguous)
	}
	p, err := resolveDevLink(r.dev(), spec)
	if err != nil {
		return Disk{}, fmt.Errorf("%s: %w", spec, err)
	}
	for _, d := range ds {
		if d.Path == p {
			return d, nil
		}
		for _, part := range d.Partitions {
			if part.Path == p {
				return Disk{}, fmt.Errorf("%s is partition %d of %s; give the whole disk: %w", spec, part.Number, d.Path, ErrBadSpec)
			}
		}
	}
	// A missing /dev path is a disk that is not there, never a file to create:
	// that would fill the RAM-backed /dev instead of the disk.
	const fix = "; run bty disks to list them (an image file to create must be outside /dev)"
	if p != spec {
		return Disk{}, fmt.Errorf("%s (%s): not a disk bty can write: %w%s", spec, p, ErrNotFound, fix)
	}
	return Disk{}, fmt.Errorf("%s: not a disk bty can write: %w%s", spec, ErrNotFound, fix)
}

// ResolveTarget is Resolve plus the headless rule: a Refused disk is an error
// (*RefusedError, wrapping category.ErrRefused) and a disk that needs confirmation is
// allowed, because every form Resolve accepts names one disk exactly. The caller
// asks for --yes before it calls this without a human to confirm.
func ResolveTarget(r Roots, spec string, c Check) (Disk, Verdict, error) {
	d, err := Resolve(r, spec)
	if err != nil {
		return Disk{}, Verdict{}, err
	}
	v := d.Verdict(c)
	if v.Level == Refused {
		return d, v, &RefusedError{Disk: d.Path, Reasons: v.Reasons}
	}
	return d, v, nil
}
