package disks

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// readAttr returns a sysfs attribute, trimmed, or "" when it cannot be read:
// attributes come and go with kernel versions and drivers, and an absent one
// means "not known", never an error.
func readAttr(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func readInt(path string) int64 {
	n, err := strconv.ParseInt(readAttr(path), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

func readBool(path string) bool { return readAttr(path) == "1" }

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// listDir returns the names in dir, sorted; a missing directory is empty (git
// keeps no empty directories, so fixture trees lack empty holders/).
func listDir(dir string) ([]string, error) {
	es, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	names := make([]string, len(es))
	for i, e := range es {
		names[i] = e.Name()
	}
	return names, nil
}

// sectorBytes is the unit of the sysfs size attribute, whatever the disk's
// logical sector size (Documentation/ABI: block/<disk>/size is in 512-byte units).
const sectorBytes = 512

// vpdSerial reads the unit serial number from a SCSI VPD page 0x80 as sysfs
// exposes it raw (device/vpd_pg80): a 4-byte header whose bytes 2-3 are the page
// length, then the serial, space-padded. libata answers it for SATA disks with
// the ATA serial, which is what udev's ID_SERIAL_SHORT holds, so a system without
// udev reports the same serial.
func vpdSerial(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 4 || b[1] != 0x80 {
		return ""
	}
	n := int(b[2])<<8 | int(b[3])
	if 4+n > len(b) {
		n = len(b) - 4
	}
	s := strings.TrimSpace(string(b[4 : 4+n]))
	for _, c := range s {
		if c < 0x20 || c > 0x7e {
			return ""
		}
	}
	return s
}

// usbSerial returns the iSerial string of the USB device above a block device's
// sysfs directory (what udev's usb_id reports as ID_SERIAL_SHORT), or "".
func usbSerial(sysRoot, dir string) string {
	for d := dir; len(d) > len(sysRoot) && d != "/"; d = filepath.Dir(d) {
		if exists(filepath.Join(d, "idVendor")) {
			return readAttr(filepath.Join(d, "serial"))
		}
	}
	return ""
}

// normWWN writes a sysfs wwid the way lsblk shows a WWN: "naa.5000C500A1B2C3D4"
// becomes 0x5000c500a1b2c3d4; EUI and NVMe identifiers stay as they are; T10
// vendor identifiers are not world-wide names and are dropped.
func normWWN(s string) string {
	switch {
	case strings.HasPrefix(s, "naa."):
		return "0x" + strings.ToLower(s[4:])
	case strings.HasPrefix(s, "t10."):
		return ""
	}
	return s
}

// realDir resolves a sysfs symlink (/sys/block/sda -> ../devices/...) and returns
// the target's path relative to the sysfs root, e.g.
// devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda.
func realDir(sysRoot, link string) (abs, rel string, err error) {
	root, err := filepath.EvalSymlinks(sysRoot)
	if err != nil {
		return "", "", fmt.Errorf("resolve %s: %w", sysRoot, err)
	}
	abs, err = filepath.EvalSymlinks(link)
	if err != nil {
		return "", "", fmt.Errorf("resolve %s: %w", link, err)
	}
	rel, err = filepath.Rel(root, abs)
	if err != nil {
		return "", "", err
	}
	return abs, filepath.ToSlash(rel), nil
}
