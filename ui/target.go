package ui

import (
	"path/filepath"
	"slices"

	"bty/disks"
)

// Target is something the wizard can flash: a disk, or a regular file (a disk
// image being produced, or the demo's scratch file).
type Target struct {
	Path      string // what the flash writes: /dev/sdb, /tmp/scratch.img
	Name      string // what the user types to confirm: sdb, scratch.img
	Model     string
	Serial    string
	Transport string   // usb, nvme, sata...; "" when unknown
	Backing   string   // a loop device's backing file; "" otherwise
	ByID      []string // /dev/disk/by-id links
	Size      int64    // bytes; 0 for a file, which grows to the image size
	Removable bool
	File      bool // a regular file, not a disk
	Verdict   disks.Verdict

	disk disks.Disk // what DiskTarget made it from
}

// TargetsFunc lists the targets with their verdicts for the flash to come. The
// disk screen calls it on entry and on refresh.
type TargetsFunc func(disks.Check) ([]Target, error)

// DiskTargets lists the disks that roots describe (disks.List), with verdicts.
func DiskTargets(roots disks.Roots) TargetsFunc {
	return func(c disks.Check) ([]Target, error) {
		ds, err := disks.List(roots)
		if err != nil {
			return nil, err
		}
		ts := make([]Target, 0, len(ds))
		for _, d := range ds {
			ts = append(ts, DiskTarget(d, d.Verdict(c)))
		}
		return ts, nil
	}
}

// DiskTarget is a disk with its verdict as a Target.
func DiskTarget(d disks.Disk, v disks.Verdict) Target {
	model := d.Model
	if d.Vendor != "" && model != "" {
		model = d.Vendor + " " + model
	} else if model == "" {
		model = d.Vendor
	}
	return Target{
		Path: d.Path, Name: d.Name, Model: model, Serial: d.Serial, Transport: d.Transport,
		Backing: d.BackingFile, ByID: d.ByID, Size: d.SizeBytes, Removable: d.Removable, Verdict: v, disk: d,
	}
}

// FileTarget is a regular file as a target: it is created or truncated to the
// image size, so a "y" confirms it.
func FileTarget(path, model string) Target {
	return Target{Path: path, Name: filepath.Base(path), Model: model, File: true, Verdict: disks.Verdict{Level: disks.OK}}
}

// needsName reports whether the confirmation asks for the target's name to be
// typed rather than a y.
func (t Target) needsName() bool { return t.Verdict.Level == disks.Confirm }

// findTarget is the target a --disk argument names: a file by its path, a
// disk by headless mode's DISK grammar (disks.Find: its path or a link to it,
// or serial:S, which never names an eMMC's boot area and is an error when two
// disks have it). Links are followed in the machine's /dev.
func findTarget(ts []Target, spec string) (Target, error) {
	var ds []disks.Disk
	for _, t := range ts {
		if t.File {
			if sameFile(t.Path, spec) {
				return t, nil
			}
			continue
		}
		d := t.disk
		if d.Path == "" { // a Target not made by DiskTarget
			d = disks.Disk{Path: t.Path, Serial: t.Serial}
		}
		ds = append(ds, d)
	}
	d, err := disks.Find(disks.Roots{}, ds, spec)
	if err != nil {
		return Target{}, err
	}
	i := slices.IndexFunc(ts, func(t Target) bool { return !t.File && t.Path == d.Path })
	return ts[i], nil
}

// sameFile reports whether two paths name the same file.
func sameFile(a, b string) bool {
	a, err1 := filepath.Abs(a)
	b, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && a == b
}
