package disks

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestVerdict(t *testing.T) {
	confirm := Verdict{Level: Confirm, Reasons: []string{"non-removable: type its name to confirm"}}
	refused := func(reasons ...string) Verdict { return Verdict{Level: Refused, Reasons: reasons} }
	tests := []struct {
		name, fixture, disk string
		check               Check
		want                Verdict
	}{
		{
			name: "NVMe holding /, /boot/efi and swap", fixture: "laptop", disk: "nvme0n1",
			want: refused(
				"holds the running system (/boot/efi is mounted from nvme0n1p1)",
				"holds the running system (/ is mounted from nvme0n1p2)",
				"holds the running system (active swap on nvme0n1p3)",
			),
		},
		{name: "SATA data disk", fixture: "laptop", disk: "sda", want: confirm},
		{
			name: "SATA data disk too small", fixture: "laptop", disk: "sda", check: Check{ImageSize: 2 << 40},
			want: refused("too small: image needs 2.0 TiB, disk has 932 GiB"),
		},
		{
			name: "too small by one byte", fixture: "vm", disk: "vdb", check: Check{ImageSize: 8589934593},
			want: refused("too small: image needs 8589934593 bytes, disk has 8589934592 bytes"),
		},
		{name: "exactly the image size", fixture: "vm", disk: "vdb", check: Check{ImageSize: 8589934592}, want: confirm},
		{
			name: "USB stick with mounted BTY_IMAGES", fixture: "laptop", disk: "sdb",
			want: refused("partition sdb1 is mounted at /run/bty/images"),
		},
		{
			name: "USB stick holding the image root", fixture: "laptop", disk: "sdb", check: Check{ImageRoot: "/run/bty/images"},
			want: refused(
				"holds the live medium (image root /run/bty/images is on it)",
				"partition sdb1 is mounted at /run/bty/images",
			),
		},
		{
			name: "USB stick holding the image file", fixture: "laptop", disk: "sdb",
			check: Check{ImagePath: "/run/bty/images/debian-12.img.zst", ImageSize: 2 << 30},
			want: refused(
				"partition sdb1 is mounted at /run/bty/images",
				"holds the image file being flashed (/run/bty/images/debian-12.img.zst)",
			),
		},
		{
			name: "image file elsewhere", fixture: "laptop", disk: "sda",
			check: Check{ImagePath: "/run/bty/images/debian-12.img.zst"}, want: confirm,
		},
		{
			name: "disk under dm-crypt", fixture: "laptop", disk: "sdc",
			want: refused(
				"partition sdc1 is mounted at /srv/data (through dm-0)",
				"partition sdc1 is held by dm-0 (dm-crypt cryptdata)",
			),
		},
		{
			name: "image file on the dm-crypt volume", fixture: "laptop", disk: "sdc",
			check: Check{ImagePath: "/srv/data/images/x.img"},
			want: refused(
				"partition sdc1 is mounted at /srv/data (through dm-0)",
				"partition sdc1 is held by dm-0 (dm-crypt cryptdata)",
				"holds the image file being flashed (/srv/data/images/x.img)",
			),
		},
		{
			name: "LVM physical volume, not mounted", fixture: "laptop", disk: "sdd",
			want: refused("partition sdd1 is held by dm-1 (lvm vg0-scratch)"),
		},
		{name: "bound loop device", fixture: "laptop", disk: "loop0", want: confirm},
		{
			name: "loop device backed by the image", fixture: "laptop", disk: "loop0",
			check: Check{ImagePath: "/home/user/vm.img"},
			want:  refused("is backed by the image file being flashed (/home/user/vm.img)"),
		},
		{
			name: "image source is a disk", fixture: "laptop", disk: "sda", check: Check{ImagePath: "/dev/sda"},
			want: refused("holds the image file being flashed (/dev/sda)"),
		},
		{
			name: "eMMC holding / and /boot, swap file", fixture: "sbc", disk: "mmcblk0",
			want: refused(
				"holds the running system (/boot is mounted from mmcblk0p1)",
				"holds the running system (/ is mounted from mmcblk0p2)",
				"holds the running system (swap file /swapfile is on mmcblk0p2)",
			),
		},
		{name: "eMMC boot partition", fixture: "sbc", disk: "mmcblk0boot0", want: refused("read-only (eMMC boot partition)")},
		{name: "removable SD card", fixture: "sbc", disk: "mmcblk1", want: Verdict{Level: OK}},
		{
			name: "SD card too small", fixture: "sbc", disk: "mmcblk1", check: Check{ImageSize: 32 << 30},
			want: refused("too small: image needs 32.0 GiB, disk has 29.7 GiB"),
		},
		{name: "virtio disk holding / on the whole disk", fixture: "vm", disk: "vda", want: refused("holds the running system (/ is mounted from vda)")},
		{name: "virtio disk with a serial", fixture: "vm", disk: "vdb", want: confirm},
		{
			name: "live medium", fixture: "live", disk: "sdb", check: Check{ImageRoot: "/run/bty/images"},
			want: refused(
				"holds the live medium (/run/live/medium is mounted from it)",
				"holds the live medium (image root /run/bty/images is on it)",
				"partition sdb2 is mounted at /run/bty/images",
			),
		},
		{
			name: "live squashfs loop", fixture: "live", disk: "loop0",
			want: refused("loop0 is mounted at /run/live/rootfs/filesystem.squashfs", "read-only"),
		},
		{name: "internal disk of a live system", fixture: "live", disk: "sda", check: Check{ImageRoot: "/run/bty/images"}, want: confirm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ok := listFixture(t, tt.fixture)[tt.disk]
			if !ok {
				t.Fatalf("List(%s) has no %s", tt.fixture, tt.disk)
			}
			got := d.Verdict(tt.check)
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("%s.Verdict(%+v) mismatch (-want +got):\n%s", tt.disk, tt.check, diff)
			}
		})
	}
}

func TestVerdictNoMedium(t *testing.T) {
	d := Disk{Name: "sdz", Path: "/dev/sdz", Removable: true}
	want := Verdict{Level: Refused, Reasons: []string{"no medium (size 0)"}}
	if diff := cmp.Diff(want, d.Verdict(Check{})); diff != "" {
		t.Errorf("sdz.Verdict({}) mismatch (-want +got):\n%s", diff)
	}
}

func TestLevelText(t *testing.T) {
	for l, want := range map[Level]string{OK: "ok", Confirm: "confirm", Refused: "refused", Level(7): "Level(7)"} {
		if got, _ := l.MarshalText(); string(got) != want {
			t.Errorf("Level(%d).MarshalText() = %q, want %q", int(l), got, want)
		}
	}
}
