package disks

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestListNames(t *testing.T) {
	// Left out everywhere: ram, zram, unbound loop, unconnected nbd, optical
	// drives, device-mapper devices.
	tests := map[string][]string{
		"laptop": {"loop0", "nvme0n1", "sda", "sdb", "sdc", "sdd"},
		"sbc":    {"mmcblk0", "mmcblk0boot0", "mmcblk0boot1", "mmcblk1"},
		"vm":     {"vda", "vdb", "vdc", "vdd", "vde"},
		"live":   {"loop0", "sda", "sdb"},
	}
	for fx, want := range tests {
		t.Run(fx, func(t *testing.T) {
			ds, err := List(fixture(fx))
			if err != nil {
				t.Fatalf("List(%s) = %v", fx, err)
			}
			var got []string
			for _, d := range ds {
				got = append(got, d.Name)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("List(%s) names mismatch (-want +got):\n%s", fx, diff)
			}
		})
	}
}

func TestListDetails(t *testing.T) {
	ignore := cmpopts.IgnoreUnexported(Disk{})
	tests := []struct {
		fixture, disk string
		want          Disk
	}{
		{
			fixture: "laptop", disk: "nvme0n1",
			want: Disk{
				Name: "nvme0n1", Path: "/dev/nvme0n1", Dev: "259:0",
				ByID: []string{
					"/dev/disk/by-id/nvme-Samsung_SSD_970_EVO_Plus_500GB_S4EVNX0R123456K",
					"/dev/disk/by-id/nvme-eui.0025385b91b0c1a2",
				},
				SizeBytes: 500107862016, LogicalSector: 512, PhysicalSector: 512,
				Model: "Samsung SSD 970 EVO Plus 500GB", Serial: "S4EVNX0R123456K",
				WWN: "eui.0025385b91b0c1a2", Transport: TranNVMe,
				Partitions: []Partition{
					{Name: "nvme0n1p1", Path: "/dev/nvme0n1p1", Number: 1, SizeBytes: 536870912, FSType: "vfat", Label: "EFI",
						Mounts: []Mount{{Path: "/boot/efi", Device: "nvme0n1p1"}}},
					{Name: "nvme0n1p2", Path: "/dev/nvme0n1p2", Number: 2, SizeBytes: 482672115712, FSType: "ext4",
						Mounts: []Mount{{Path: "/", Device: "nvme0n1p2"}}},
					{Name: "nvme0n1p3", Path: "/dev/nvme0n1p3", Number: 3, SizeBytes: 16897802240, FSType: "swap",
						Swap: []string{"nvme0n1p3"}},
				},
			},
		},
		{
			// No udev record: serial from VPD page 0x80, WWN from the SCSI wwid,
			// by-id links from /dev/disk/by-id.
			fixture: "laptop", disk: "sda",
			want: Disk{
				Name: "sda", Path: "/dev/sda", Dev: "8:0",
				ByID:      []string{"/dev/disk/by-id/ata-WDC_WD10EZEX-08WN4A0_WD-WCC6Y1234567", "/dev/disk/by-id/wwn-0x50014ee2b5c3d4e5"},
				SizeBytes: 1000204886016, LogicalSector: 512, PhysicalSector: 4096,
				Vendor: "ATA", Model: "WDC WD10EZEX-08W", Serial: "WD-WCC6Y1234567", WWN: "0x50014ee2b5c3d4e5",
				Transport: TranSATA, Rotational: true,
				Partitions: []Partition{{Name: "sda1", Path: "/dev/sda1", Number: 1, SizeBytes: 1000203820544,
					ByID: []string{"/dev/disk/by-id/ata-WDC_WD10EZEX-08WN4A0_WD-WCC6Y1234567-part1"}}},
			},
		},
		{
			fixture: "laptop", disk: "sdb",
			want: Disk{
				Name: "sdb", Path: "/dev/sdb", Dev: "8:16",
				ByID:      []string{"/dev/disk/by-id/usb-SanDisk_Cruzer_Blade_4C530001230101112233-0:0"},
				SizeBytes: 15376318464, LogicalSector: 512, PhysicalSector: 512,
				Vendor: "SanDisk", Model: "Cruzer Blade", Serial: "4C530001230101112233",
				Transport: TranUSB, Removable: true, Rotational: true,
				Partitions: []Partition{{Name: "sdb1", Path: "/dev/sdb1", Number: 1, SizeBytes: 15375269888,
					ByID:   []string{"/dev/disk/by-id/usb-SanDisk_Cruzer_Blade_4C530001230101112233-0:0-part1"},
					FSType: "vfat", Label: "BTY_IMAGES", Mounts: []Mount{{Path: "/run/bty/images", Device: "sdb1"}}}},
			},
		},
		{
			fixture: "laptop", disk: "sdc",
			want: Disk{
				Name: "sdc", Path: "/dev/sdc", Dev: "8:32",
				ByID:      []string{"/dev/disk/by-id/ata-ST2000DM008-2FR102_ZFL0ABCD", "/dev/disk/by-id/wwn-0x5000c500c1234567"},
				SizeBytes: 2000398934016, LogicalSector: 512, PhysicalSector: 4096,
				Vendor: "ATA", Model: "ST2000DM008-2FR102", Serial: "ZFL0ABCD", WWN: "0x5000c500c1234567",
				Transport: TranSATA, Rotational: true,
				Partitions: []Partition{{Name: "sdc1", Path: "/dev/sdc1", Number: 1, SizeBytes: 2000397868544, FSType: "crypto_LUKS",
					Mounts:  []Mount{{Path: "/srv/data", Device: "dm-0"}},
					Holders: []Holder{{Name: "dm-0", Kind: "dm-crypt", Mapper: "cryptdata"}}}},
			},
		},
		{
			fixture: "laptop", disk: "loop0",
			want: Disk{
				Name: "loop0", Path: "/dev/loop0", Dev: "7:0", SizeBytes: 10737418240,
				LogicalSector: 512, PhysicalSector: 512, Transport: TranLoop, BackingFile: "/home/user/vm.img",
			},
		},
		{
			// No udev at all: model and serial of the eMMC card from sysfs.
			fixture: "sbc", disk: "mmcblk0boot1",
			want: Disk{
				Name: "mmcblk0boot1", Path: "/dev/mmcblk0boot1", Dev: "179:16", SizeBytes: 4194304,
				LogicalSector: 512, PhysicalSector: 512, Model: "DA4032", Serial: "0x9a1b2c3d",
				Transport: TranMMC, ReadOnly: true, EMMCArea: "boot",
			},
		},
		{
			fixture: "sbc", disk: "mmcblk0",
			want: Disk{
				Name: "mmcblk0", Path: "/dev/mmcblk0", Dev: "179:0", SizeBytes: 31268536320,
				LogicalSector: 512, PhysicalSector: 512, Model: "DA4032", Serial: "0x9a1b2c3d", Transport: TranMMC,
				Partitions: []Partition{
					{Name: "mmcblk0p1", Path: "/dev/mmcblk0p1", Number: 1, SizeBytes: 268435456,
						Mounts: []Mount{{Path: "/boot", Device: "mmcblk0p1"}}},
					{Name: "mmcblk0p2", Path: "/dev/mmcblk0p2", Number: 2, SizeBytes: 30995906560,
						Mounts: []Mount{{Path: "/", Device: "mmcblk0p2"}}, Swap: []string{"/swapfile"}},
				},
			},
		},
		{
			// A virtio disk: serial from sysfs, no vendor name (sysfs has a PCI id).
			fixture: "vm", disk: "vdb",
			want: Disk{
				Name: "vdb", Path: "/dev/vdb", Dev: "254:16", ByID: []string{"/dev/disk/by-id/virtio-bty-target"},
				SizeBytes: 8589934592, LogicalSector: 512, PhysicalSector: 512, Serial: "bty-target",
				Transport: TranVirtio, Rotational: true,
			},
		},
		{
			fixture: "live", disk: "sdb",
			want: Disk{
				Name: "sdb", Path: "/dev/sdb", Dev: "8:16",
				ByID:      []string{"/dev/disk/by-id/usb-Kingston_DataTraveler_3.0_60A44C3FACC1E3B1C9B90F14-0:0"},
				SizeBytes: 31009800192, LogicalSector: 512, PhysicalSector: 512,
				Vendor: "Kingston", Model: "DataTraveler_3.0", Serial: "60A44C3FACC1E3B1C9B90F14",
				Transport: TranUSB, Removable: true, LiveMedium: true,
				Partitions: []Partition{
					{Name: "sdb1", Path: "/dev/sdb1", Number: 1, SizeBytes: 734003200, FSType: "iso9660", Label: "d-live_12.5.0_st_amd64",
						Mounts: []Mount{{Path: "/run/live/medium", Device: "sdb1"}}},
					{Name: "sdb2", Path: "/dev/sdb2", Number: 2, SizeBytes: 30275534848, FSType: "exfat", Label: "BTY_IMAGES",
						Mounts: []Mount{{Path: "/run/bty/images", Device: "sdb2"}}},
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.fixture+"/"+tt.disk, func(t *testing.T) {
			got, ok := listFixture(t, tt.fixture)[tt.disk]
			if !ok {
				t.Fatalf("List(%s) has no %s", tt.fixture, tt.disk)
			}
			if diff := cmp.Diff(tt.want, got, ignore, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("List(%s)[%s] mismatch (-want +got):\n%s", tt.fixture, tt.disk, diff)
			}
		})
	}
}

func TestListUSBSerialWithoutUdev(t *testing.T) {
	// Without a udev record, a USB disk's serial is the USB device's iSerial.
	r := fixture("laptop")
	r.Run = t.TempDir()
	ds, err := List(r)
	if err != nil {
		t.Fatalf("List(laptop without udev) = %v", err)
	}
	for _, d := range ds {
		if d.Name == "sdb" {
			if d.Serial != "4C530001230101112233" || d.Model != "Cruzer Blade" || d.Vendor != "SanDisk" {
				t.Errorf("List(laptop without udev)[sdb] = vendor %q model %q serial %q, want SanDisk, Cruzer Blade, 4C530001230101112233", d.Vendor, d.Model, d.Serial)
			}
			return
		}
	}
	t.Errorf("List(laptop without udev) has no sdb")
}

func TestListErrors(t *testing.T) {
	r := fixture("vm")
	r.Proc = t.TempDir() // no mountinfo: nothing can be judged, so no list
	if _, err := List(r); err == nil {
		t.Errorf("List(no mountinfo) = nil error, want one")
	}
	r = fixture("vm")
	r.Sys = t.TempDir()
	if _, err := List(r); err == nil {
		t.Errorf("List(empty sysfs) = nil error, want one")
	}
}
