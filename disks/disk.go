package disks

// Roots are the directories List reads. The zero value reads the running system.
type Roots struct {
	Sys  string // sysfs; "" means /sys
	Proc string // procfs; "" means /proc (self/mountinfo, swaps)
	Dev  string // devtmpfs; "" means /dev (disk/by-id links, DISK arguments)
	Run  string // "" means /run (udev/data)
}

func (r Roots) sys() string  { return or(r.Sys, "/sys") }
func (r Roots) proc() string { return or(r.Proc, "/proc") }
func (r Roots) dev() string  { return or(r.Dev, "/dev") }
func (r Roots) run() string  { return or(r.Run, "/run") }

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Transports, as lsblk names them.
const (
	TranNVMe   = "nvme"
	TranSATA   = "sata"
	TranUSB    = "usb"
	TranVirtio = "virtio"
	TranMMC    = "mmc"
	TranSCSI   = "scsi"
	TranLoop   = "loop"
	TranNBD    = "nbd"
)

// Disk is a whole block device bty could write. Paths are as the running system
// names them (/dev/sda), whatever the Roots.
type Disk struct {
	Name           string   `json:"name"`  // kernel name, e.g. sda
	Path           string   `json:"path"`  // /dev/sda
	ByID           []string `json:"by_id"` // /dev/disk/by-id links to the disk, sorted
	Dev            string   `json:"dev"`   // major:minor
	SizeBytes      int64    `json:"size_bytes"`
	LogicalSector  int      `json:"logical_sector_size"`  // bytes
	PhysicalSector int      `json:"physical_sector_size"` // bytes
	Vendor         string   `json:"vendor"`
	Model          string   `json:"model"`
	Serial         string   `json:"serial"` // "" when the disk reports none
	WWN            string   `json:"wwn"`
	Transport      string   `json:"tran"` // one of the Tran constants, or ""
	Removable      bool     `json:"removable"`
	ReadOnly       bool     `json:"readonly"`
	Rotational     bool     `json:"rotational"`
	BackingFile    string   `json:"backing_file,omitempty"` // loop devices: the file bound to it
	// EMMCArea is "boot" or "rpmb" for the hardware areas of an eMMC that the
	// kernel shows as disks of their own (mmcblk0boot0, mmcblk0rpmb).
	EMMCArea string `json:"emmc_area,omitempty"`

	// Mounts of the whole disk and of devices stacked on it (not of partitions).
	Mounts []Mount `json:"mounts"`
	// Swap: active swap areas on the whole disk or stacked on it: device names,
	// or the paths of swap files on its file systems.
	Swap []string `json:"swap"`
	// Holders: devices stacked on the whole disk (MD, LVM, dm-crypt), recursively.
	Holders    []Holder    `json:"holders"`
	Partitions []Partition `json:"partitions"`

	// LiveMedium: /run/live/medium is mounted from this disk (a booted live system).
	LiveMedium bool `json:"live_medium"`

	// mounts is the whole mount table and members the names of the disk, its
	// partitions and everything stacked on them; Verdict uses them to find the
	// disk that holds a path (Check.ImagePath, Check.ImageRoot).
	mounts  []mountEntry
	members map[string]bool
}

// Partition is a partition of a Disk.
type Partition struct {
	Name      string   `json:"name"` // sda1
	Path      string   `json:"path"` // /dev/sda1
	Number    int      `json:"number"`
	SizeBytes int64    `json:"size_bytes"`
	ByID      []string `json:"by_id"`
	FSType    string   `json:"fstype"` // from udev; "" without it
	Label     string   `json:"label"`  // from udev; "" without it
	ReadOnly  bool     `json:"readonly"`
	Mounts    []Mount  `json:"mounts"`  // of the partition and of devices stacked on it
	Swap      []string `json:"swap"`    // as Disk.Swap
	Holders   []Holder `json:"holders"` // as Disk.Holders
}

// Mount is one mount of a device or of a device stacked on it.
type Mount struct {
	Path   string `json:"path"`   // mount point
	Device string `json:"device"` // kernel name of the mounted device: sda1, dm-0
}

// Holder is a device stacked on a disk or partition.
type Holder struct {
	Name   string `json:"name"`             // dm-0, md127
	Kind   string `json:"kind"`             // dm-crypt, lvm, md, dm, or "" when unknown
	Mapper string `json:"mapper,omitempty"` // device-mapper name: /dev/mapper/<Mapper>
}
