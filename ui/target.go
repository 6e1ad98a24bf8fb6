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
		Backing: d.BackingFile, ByID: d.ByID, Size: d.SizeBytes, Removable: d.Removable, Verdict: v,
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

// matches reports whether a --disk argument names this target: its path, a
// by-id link, serial:SERIAL, or the same file.
func (t Target) matches(spec string) bool {
	switch {
	case spec == t.Path, slices.Contains(t.ByID, spec):
		return true
	case t.Serial != "" && spec == "serial:"+t.Serial:
		return true
	}
	a, err1 := filepath.Abs(spec)
	b, err2 := filepath.Abs(t.Path)
	if err1 == nil && err2 == nil && a == b {
		return true
	}
	if r, err := filepath.EvalSymlinks(spec); err == nil {
		return r == t.Path
	}
	return false
}
