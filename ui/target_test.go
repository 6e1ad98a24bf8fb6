package ui

import (
	"strings"
	"testing"

	"bty/disks"
)

// TestPrefillDiskGrammar: --disk in the wizard follows headless mode's DISK
// grammar (disks.Find): serial:S names an eMMC card, never its boot area that
// repeats the card's serial, and a serial two disks share is an error, not
// the first of them.
func TestPrefillDiskGrammar(t *testing.T) {
	ok := disks.Verdict{Level: disks.OK}
	emmc := []Target{
		DiskTarget(disks.Disk{Name: "mmcblk0boot0", Path: "/dev/mmcblk0boot0", Serial: "0x8f1a2b3c", EMMCArea: "boot"}, ok),
		DiskTarget(disks.Disk{Name: "mmcblk0", Path: "/dev/mmcblk0", Serial: "0x8f1a2b3c"}, ok),
		DiskTarget(disks.Disk{Name: "sdb", Path: "/dev/sdb", Serial: "CLONED"}, ok),
		DiskTarget(disks.Disk{Name: "sdc", Path: "/dev/sdc", Serial: "CLONED"}, ok),
		FileTarget("/tmp/out.img", "regular file"),
	}
	for _, tc := range []struct {
		name, disk string
		want       screen
		target     string // on the confirmation
		problem    string // on the disk screen
	}{
		{"eMMC card by serial", "serial:0x8f1a2b3c", screenConfirm, "/dev/mmcblk0", ""},
		{"eMMC boot area by path", "/dev/mmcblk0boot0", screenConfirm, "/dev/mmcblk0boot0", ""},
		{"a serial two disks have", "serial:CLONED", screenDisks, "", "2 disks have it (/dev/sdb, /dev/sdc)"},
		{"empty serial", "serial:", screenDisks, "", "empty serial"},
		{"a file", "/tmp/../tmp/out.img", screenConfirm, "/tmp/out.img", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := fakeOptions(newFakeBackend())
			o.Targets = func(disks.Check) ([]Target, error) { return emmc, nil }
			o.Image, o.Disk = "debian-12-generic-amd64.img.xz", tc.disk
			h := newHarness(t, o)
			h.want(tc.want)
			if tc.target != "" && h.m.plan.target.Path != tc.target {
				t.Errorf("--disk %s: the confirmation is for %s, want %s", tc.disk, h.m.plan.target.Path, tc.target)
			}
			if !strings.Contains(h.m.disks.problem, tc.problem) {
				t.Errorf("--disk %s: problem = %q, want %q", tc.disk, h.m.disks.problem, tc.problem)
			}
		})
	}
}
