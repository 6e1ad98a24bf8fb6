package disks

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// system is one reading of the machine's block devices and mounts.
type system struct {
	r       Roots
	devName map[string]string // major:minor -> kernel name, every block device
	mapper  map[string]string // device-mapper name -> dm-N
	mounts  []mountEntry
	swaps   []swapEntry
	byID    map[string][]string // kernel name -> /dev/disk/by-id links
}

// List returns the whole disks of the machine that Roots describe, in the order
// of /sys/block: every disk bty could be asked to write, refused ones included
// (Verdict says which). Left out: ram, zram, optical drives, device-mapper and
// MD devices (they are stacked on disks, which carry them as Holders), nbd
// devices not connected, loop devices not bound to a file, and hidden NVMe
// multipath paths.
func List(r Roots) ([]Disk, error) {
	if r == (Roots{}) && runtime.GOOS != "linux" {
		return nil, fmt.Errorf("list disks: %w", errors.ErrUnsupported)
	}
	s, err := readSystem(r)
	if err != nil {
		return nil, err
	}
	names, err := listDir(filepath.Join(r.sys(), "block"))
	if err != nil {
		return nil, fmt.Errorf("list disks: %w", err)
	}
	if names == nil {
		return nil, fmt.Errorf("list disks: %w", &os.PathError{Op: "read", Path: filepath.Join(r.sys(), "block"), Err: fs.ErrNotExist})
	}
	var ds []Disk
	for _, name := range names {
		if s.excluded(name) {
			continue
		}
		d, err := s.disk(name)
		if err != nil {
			return nil, err
		}
		ds = append(ds, d)
	}
	return ds, nil
}

func readSystem(r Roots) (*system, error) {
	s := &system{r: r, devName: map[string]string{}, mapper: map[string]string{}, byID: map[string][]string{}}
	class := filepath.Join(r.sys(), "class", "block")
	names, err := listDir(class)
	if err != nil {
		return nil, fmt.Errorf("list block devices: %w", err)
	}
	for _, n := range names {
		if dev := readAttr(filepath.Join(class, n, "dev")); dev != "" {
			s.devName[dev] = n
		}
		if m := readAttr(filepath.Join(class, n, "dm", "name")); m != "" {
			s.mapper[m] = n
		}
	}

	// Mounts are what keeps bty off a disk in use: no mount table, no list.
	f, err := os.Open(filepath.Join(r.proc(), "self", "mountinfo"))
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	if s.mounts, err = parseMountinfo(f); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	for i, m := range s.mounts {
		s.mounts[i].name = s.mountedDevice(m)
	}

	// /proc/swaps is absent only from kernels built without swap.
	if f, err := os.Open(filepath.Join(r.proc(), "swaps")); err == nil {
		defer f.Close()
		if s.swaps, err = parseSwaps(f); err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name(), err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read swaps: %w", err)
	}

	byID := filepath.Join(r.dev(), "disk", "by-id")
	links, err := listDir(byID)
	if err != nil {
		return nil, fmt.Errorf("list by-id links: %w", err)
	}
	for _, l := range links {
		p := "/dev/disk/by-id/" + l
		if n := s.devicePathName(p); n != "" {
			s.byID[n] = append(s.byID[n], p)
		}
	}
	return s, nil
}

// mountedDevice returns the kernel name of the block device a mount comes from,
// or "". The device number is the reliable link; the source path is the fallback
// for file systems that report an anonymous device number (btrfs).
func (s *system) mountedDevice(m mountEntry) string {
	if n, ok := s.devName[m.dev]; ok {
		return n
	}
	return s.devicePathName(m.source)
}

// devicePathName maps a /dev path (/dev/sda1, /dev/mapper/root,
// /dev/disk/by-uuid/...) to a kernel block device name, or "".
func (s *system) devicePathName(p string) string {
	host, err := resolveDevLink(s.r.dev(), p)
	if err != nil {
		return ""
	}
	rest, ok := strings.CutPrefix(host, "/dev/")
	if !ok {
		return ""
	}
	if m, ok := strings.CutPrefix(rest, "mapper/"); ok {
		return s.mapper[m]
	}
	// The kernel name of a device whose /dev name has a slash (cciss/c0d0) uses "!".
	rest = strings.ReplaceAll(rest, "/", "!")
	if _, ok := s.devName[readAttr(filepath.Join(s.r.sys(), "class", "block", rest, "dev"))]; ok {
		return rest
	}
	return ""
}

// resolveDevLink follows symlinks of a /dev path inside the devtmpfs root dev and
// returns the /dev path it ends at (as the running system names it). A path that
// does not exist is returned as it is: fixture trees have links but no nodes.
func resolveDevLink(dev, p string) (string, error) {
	p = filepath.Clean(p)
	if !strings.HasPrefix(p, "/dev/") {
		return p, nil
	}
	for range 40 {
		rooted := filepath.Join(dev, strings.TrimPrefix(p, "/dev"))
		fi, err := os.Lstat(rooted)
		if errors.Is(err, fs.ErrNotExist) {
			return p, nil
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return p, nil
		}
		t, err := os.Readlink(rooted)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(t) {
			t = filepath.Join(filepath.Dir(p), t)
		}
		if !strings.HasPrefix(t, "/dev/") {
			return t, nil
		}
		p = filepath.Clean(t)
	}
	return "", &os.PathError{Op: "resolve", Path: p, Err: errors.New("too many levels of symbolic links")}
}

var (
	ramRE      = regexp.MustCompile(`^(ram|zram)[0-9]+$`)
	emmcBootRE = regexp.MustCompile(`^mmcblk[0-9]+boot[0-9]+$`)
	emmcRPMBRE = regexp.MustCompile(`^mmcblk[0-9]+rpmb$`)
	ataRE      = regexp.MustCompile(`(^|/)ata[0-9]+/`)
)

// excluded reports whether a /sys/block entry is not a disk bty lists.
func (s *system) excluded(name string) bool {
	dir := filepath.Join(s.r.sys(), "block", name)
	switch {
	case ramRE.MatchString(name), strings.HasPrefix(name, "sr"):
		return true
	case exists(filepath.Join(dir, "dm")), exists(filepath.Join(dir, "md")):
		return true // stacked devices; they show up as holders of their disks
	case strings.HasPrefix(name, "loop"):
		// A loop device is a disk only while bound to a file.
		return !exists(filepath.Join(dir, "loop", "backing_file"))
	case strings.HasPrefix(name, "nbd"):
		// The pid attribute exists while a client holds the device connected.
		return !exists(filepath.Join(dir, "pid"))
	case readBool(filepath.Join(dir, "hidden")):
		return true // an NVMe multipath path; its head node is listed
	}
	return false
}

func (s *system) disk(name string) (Disk, error) {
	link := filepath.Join(s.r.sys(), "block", name)
	abs, rel, err := realDir(s.r.sys(), link)
	if err != nil {
		return Disk{}, fmt.Errorf("disk %s: %w", name, err)
	}
	dev := readAttr(filepath.Join(abs, "dev"))
	u := readUdev(s.r.run(), dev)
	d := Disk{
		Name:           name,
		Path:           "/dev/" + devName(abs, name),
		Dev:            dev,
		SizeBytes:      readInt(filepath.Join(abs, "size")) * sectorBytes,
		LogicalSector:  int(readInt(filepath.Join(abs, "queue", "logical_block_size"))),
		PhysicalSector: int(readInt(filepath.Join(abs, "queue", "physical_block_size"))),
		Removable:      readBool(filepath.Join(abs, "removable")),
		ReadOnly:       readBool(filepath.Join(abs, "ro")),
		Rotational:     readBool(filepath.Join(abs, "queue", "rotational")),
		BackingFile:    readAttr(filepath.Join(abs, "loop", "backing_file")),
	}
	d.Transport = transport(name, rel, u)
	s.identity(&d, abs, u)
	switch {
	case emmcBootRE.MatchString(name):
		d.EMMCArea = "boot"
	case emmcRPMBRE.MatchString(name):
		d.EMMCArea = "rpmb"
	}
	d.ByID = s.links(name, u)

	d.members = map[string]bool{}
	stack := s.stack(name)
	d.Mounts, d.Swap = s.usage(stack)
	d.Holders = s.holders(name)
	for _, n := range stack {
		d.members[n] = true
	}
	parts, err := listDir(abs)
	if err != nil {
		return Disk{}, fmt.Errorf("disk %s: %w", name, err)
	}
	for _, pn := range parts {
		pdir := filepath.Join(abs, pn)
		num, err := strconv.Atoi(readAttr(filepath.Join(pdir, "partition")))
		if err != nil {
			continue // not a partition: queue/, holders/, mmcblk0boot0/, ...
		}
		pdev := readAttr(filepath.Join(pdir, "dev"))
		pu := readUdev(s.r.run(), pdev)
		p := Partition{
			Name:      pn,
			Path:      "/dev/" + devName(pdir, pn),
			Number:    num,
			SizeBytes: readInt(filepath.Join(pdir, "size")) * sectorBytes,
			ByID:      s.links(pn, pu),
			FSType:    pu.get("ID_FS_TYPE"),
			Label:     pu.get("ID_FS_LABEL_ENC", "ID_FS_LABEL"),
			ReadOnly:  readBool(filepath.Join(pdir, "ro")),
			Holders:   empty(s.holders(pn)),
		}
		pstack := s.stack(pn)
		p.Mounts, p.Swap = s.usage(pstack)
		p.ByID, p.Mounts, p.Swap = empty(p.ByID), empty(p.Mounts), empty(p.Swap)
		for _, n := range pstack {
			d.members[n] = true
		}
		d.Partitions = append(d.Partitions, p)
	}
	slices.SortStableFunc(d.Partitions, func(a, b Partition) int { return a.Number - b.Number })
	for _, m := range s.mounts {
		if m.point == liveMedium && d.members[m.name] {
			d.LiveMedium = true
		}
	}
	d.mounts = s.mounts
	// Empty lists, not nil, so that JSON shows [] rather than null.
	d.ByID, d.Mounts, d.Swap, d.Holders, d.Partitions = empty(d.ByID), empty(d.Mounts), empty(d.Swap), empty(d.Holders), empty(d.Partitions)
	return d, nil
}

func empty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// liveMedium is where Debian live-boot (and bty's own boot media) mount the
// medium the system booted from.
const liveMedium = "/run/live/medium"

// devName is the device's name under /dev (uevent DEVNAME), which differs from
// the kernel name only for names with a slash.
func devName(dir, name string) string {
	for _, l := range strings.Split(readAttr(filepath.Join(dir, "uevent")), "\n") {
		if v, ok := strings.CutPrefix(l, "DEVNAME="); ok && v != "" {
			return v
		}
	}
	return name
}

// transport names the bus the way lsblk's TRAN column does, from the udev bus
// when there is one and otherwise from the device's place in the sysfs tree.
func transport(name, rel string, u udevInfo) string {
	switch {
	case strings.HasPrefix(name, "loop"):
		return TranLoop
	case strings.HasPrefix(name, "nbd"):
		return TranNBD
	case u.get("ID_BUS") == "usb" || strings.Contains(rel, "/usb"):
		return TranUSB
	case strings.HasPrefix(name, "nvme") || strings.Contains(rel, "/nvme/"):
		return TranNVMe
	case strings.HasPrefix(name, "mmcblk"):
		return TranMMC
	case strings.HasPrefix(name, "vd"):
		return TranVirtio
	case ataRE.MatchString(rel):
		return TranSATA
	case strings.HasPrefix(name, "sd"):
		return TranSCSI
	}
	return ""
}

// identity fills vendor, model, serial and WWN: udev's view first (what lsblk
// shows), then sysfs, so a live system without udev reports the same values.
func (s *system) identity(d *Disk, dir string, u udevInfo) {
	dev := filepath.Join(dir, "device")
	d.Vendor = u.get("ID_VENDOR_ENC", "ID_VENDOR")
	if d.Vendor == "" {
		// virtio and PCI devices have a numeric vendor id here, not a name.
		if v := readAttr(filepath.Join(dev, "vendor")); !strings.HasPrefix(v, "0x") {
			d.Vendor = v
		}
	}
	d.Model = u.get("ID_MODEL_ENC", "ID_MODEL")
	if d.Model == "" {
		d.Model = readAttr(filepath.Join(dev, "model"))
	}
	if d.Model == "" && d.Transport == TranMMC {
		d.Model = readAttr(filepath.Join(dev, "name")) // the card's product name
	}
	d.Serial = u.get("ID_SCSI_SERIAL", "ID_SERIAL_SHORT")
	for _, f := range []func() string{
		func() string { return readAttr(filepath.Join(dir, "serial")) }, // virtio
		func() string { return readAttr(filepath.Join(dev, "serial")) }, // NVMe, MMC
		func() string {
			if d.Transport != TranUSB {
				return ""
			}
			return usbSerial(s.r.sys(), dir)
		},
		func() string { return vpdSerial(filepath.Join(dev, "vpd_pg80")) }, // SATA, SAS
	} {
		if d.Serial != "" {
			break
		}
		d.Serial = f()
	}
	d.WWN = u.get("ID_WWN_WITH_EXTENSION", "ID_WWN")
	if d.WWN == "" {
		d.WWN = normWWN(or(readAttr(filepath.Join(dir, "wwid")), readAttr(filepath.Join(dev, "wwid"))))
	}
}

// links returns the /dev/disk/by-id links of a device: those in the Dev root and
// those the udev database records.
func (s *system) links(name string, u udevInfo) []string {
	ls := slices.Clone(s.byID[name])
	for _, l := range u.links {
		if strings.HasPrefix(l, "disk/by-id/") {
			ls = append(ls, "/dev/"+l)
		}
	}
	slices.Sort(ls)
	return slices.Compact(ls)
}

// stack returns name and every device stacked on it: holders, recursively, and
// the partitions of holders that have them (a partitioned MD array).
func (s *system) stack(name string) []string {
	var out []string
	seen := map[string]bool{}
	var walk func(string)
	walk = func(n string) {
		if seen[n] {
			return
		}
		seen[n] = true
		out = append(out, n)
		dir := filepath.Join(s.r.sys(), "class", "block", n)
		hs, _ := listDir(filepath.Join(dir, "holders"))
		for _, h := range hs {
			walk(h)
		}
		if n != name {
			kids, _ := listDir(dir)
			for _, k := range kids {
				if exists(filepath.Join(dir, k, "partition")) {
					walk(k)
				}
			}
		}
	}
	walk(name)
	return out
}

// holders returns the devices stacked on name, recursively, without name itself.
func (s *system) holders(name string) []Holder {
	var hs []Holder
	for _, n := range s.stack(name)[1:] {
		if exists(filepath.Join(s.r.sys(), "class", "block", n, "partition")) {
			continue // a partition of a holder, not a holder
		}
		hs = append(hs, s.holder(n))
	}
	return hs
}

func (s *system) holder(n string) Holder {
	dir := filepath.Join(s.r.sys(), "class", "block", n)
	h := Holder{Name: n, Mapper: readAttr(filepath.Join(dir, "dm", "name"))}
	uuid := readAttr(filepath.Join(dir, "dm", "uuid"))
	switch {
	case strings.HasPrefix(uuid, "CRYPT-"):
		h.Kind = "dm-crypt"
	case strings.HasPrefix(uuid, "LVM-"):
		h.Kind = "lvm"
	case exists(filepath.Join(dir, "dm")):
		h.Kind = "dm"
	case exists(filepath.Join(dir, "md")):
		h.Kind = "md"
	case strings.HasPrefix(n, "bcache"):
		h.Kind = "bcache"
	}
	return h
}

// usage returns the mounts and active swap areas of the devices in stack.
func (s *system) usage(stack []string) ([]Mount, []string) {
	in := map[string]bool{}
	for _, n := range stack {
		in[n] = true
	}
	var ms []Mount
	for _, m := range s.mounts {
		if m.name != "" && in[m.name] {
			mt := Mount{Path: m.point, Device: m.name}
			if !slices.Contains(ms, mt) {
				ms = append(ms, mt)
			}
		}
	}
	var sw []string
	for _, e := range s.swaps {
		if e.file {
			if m, ok := holding(s.mounts, e.path); ok && m.name != "" && in[m.name] {
				sw = append(sw, e.path)
			}
			continue
		}
		if n := s.devicePathName(e.path); n != "" && in[n] {
			sw = append(sw, n)
		}
	}
	return ms, sw
}
