package disks

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"bty/category"
)

func TestResolve(t *testing.T) {
	tests := []struct {
		fixture, spec string
		want          string // disk path, when found
		wantErr       error
	}{
		{"vm", "/dev/vdb", "/dev/vdb", nil},
		{"vm", "/dev/vdb/", "/dev/vdb", nil},
		{"vm", "/dev/disk/by-id/virtio-bty-target", "/dev/vdb", nil},
		{"vm", "serial:bty-target", "/dev/vdb", nil},
		{"vm", "serial:bty-targe", "", ErrNotFound},  // exact match only
		{"vm", "serial:BTY-TARGET", "", ErrNotFound}, // case matters
		{"vm", "serial:CLONE-1", "", ErrAmbiguous},   // vdd and vde
		{"vm", "serial:", "", ErrBadSpec},            // vdc has no serial; "" never matches
		{"vm", "vdb", "", ErrBadSpec},                // not a DISK form
		{"vm", "bty-target", "", ErrBadSpec},         // not a DISK form
		{"vm", "/dev/vdz", "", ErrNotFound},          // no such disk
		{"vm", "/dev/disk/by-id/virtio-nope", "", ErrNotFound},
		{"laptop", "/dev/disk/by-id/wwn-0x50014ee2b5c3d4e5", "/dev/sda", nil},
		{"laptop", "serial:4C530001230101112233", "/dev/sdb", nil},
		{"laptop", "serial:WD-WCC6Y1234567", "/dev/sda", nil},
		{"laptop", "/dev/sda1", "", ErrBadSpec}, // a partition
		{"laptop", "/dev/disk/by-id/ata-WDC_WD10EZEX-08WN4A0_WD-WCC6Y1234567-part1", "", ErrBadSpec},
		{"laptop", "/dev/zram0", "", ErrNotFound},
		{"laptop", "/dev/loop1", "", ErrNotFound}, // unbound
		{"laptop", "/dev/dm-0", "", ErrNotFound},
		{"sbc", "serial:0x9a1b2c3d", "/dev/mmcblk0", nil}, // not its boot areas, which repeat the serial
		{"sbc", "/dev/mmcblk0boot0", "/dev/mmcblk0boot0", nil},
	}
	for _, tt := range tests {
		t.Run(tt.fixture+"/"+tt.spec, func(t *testing.T) {
			d, err := Resolve(fixture(tt.fixture), tt.spec)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Resolve(%q) error = %v, want %v", tt.spec, err, tt.wantErr)
			}
			if d.Path != tt.want {
				t.Errorf("Resolve(%q) = %s, want %s", tt.spec, d.Path, tt.want)
			}
		})
	}
}

func TestResolveTarget(t *testing.T) {
	tests := []struct {
		fixture, spec string
		check         Check
		wantLevel     Level
		wantReasons   []string // of a RefusedError
	}{
		{fixture: "vm", spec: "serial:bty-target", wantLevel: Confirm},
		{fixture: "vm", spec: "/dev/vda", wantLevel: Refused, wantReasons: []string{"holds the running system (/ is mounted from vda)"}},
		{fixture: "vm", spec: "/dev/disk/by-id/virtio-bty-target", check: Check{ImageSize: 9 << 30}, wantLevel: Refused,
			wantReasons: []string{"too small: image needs 9.0 GiB, disk has 8.0 GiB"}},
		{fixture: "sbc", spec: "/dev/mmcblk1", wantLevel: OK},
	}
	for _, tt := range tests {
		t.Run(tt.fixture+"/"+tt.spec, func(t *testing.T) {
			d, v, err := ResolveTarget(fixture(tt.fixture), tt.spec, tt.check)
			if v.Level != tt.wantLevel {
				t.Errorf("ResolveTarget(%q) level = %v, want %v", tt.spec, v.Level, tt.wantLevel)
			}
			if tt.wantLevel != Refused {
				if err != nil {
					t.Errorf("ResolveTarget(%q) = %v, want no error", tt.spec, err)
				}
				return
			}
			var re *RefusedError
			if !errors.Is(err, category.ErrRefused) || !errors.As(err, &re) {
				t.Fatalf("ResolveTarget(%q) error = %v, want a RefusedError", tt.spec, err)
			}
			if re.Disk != d.Path {
				t.Errorf("ResolveTarget(%q) error disk = %s, want %s", tt.spec, re.Disk, d.Path)
			}
			if diff := cmp.Diff(tt.wantReasons, re.Reasons); diff != "" {
				t.Errorf("ResolveTarget(%q) reasons mismatch (-want +got):\n%s", tt.spec, diff)
			}
		})
	}
}
