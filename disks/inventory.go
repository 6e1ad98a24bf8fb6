package disks

import (
	"fmt"

	"bty/wire"
)

// InventoryDisk is one disk of the inventory a machine posts in server-driven
// mode (docs/server-protocol.md), with the size_bytes bty adds; the wire
// package owns the type, shared with the fleet server.
type InventoryDisk = wire.InventoryDisk

// Inventory returns the inventory entries of ds, in order.
func Inventory(ds []Disk) []InventoryDisk {
	inv := make([]InventoryDisk, 0, len(ds))
	for _, d := range ds {
		inv = append(inv, d.Inventory())
	}
	return inv
}

// Inventory returns the disk's inventory entry.
func (d Disk) Inventory() InventoryDisk {
	return InventoryDisk{
		Path:      d.Path,
		Size:      HumanSize(d.SizeBytes),
		Vendor:    d.Vendor,
		Model:     d.Model,
		Serial:    d.Serial,
		Tran:      d.Transport,
		Removable: d.Removable,
		Readonly:  d.ReadOnly,
		SizeBytes: d.SizeBytes,
	}
}

// HumanSize writes a byte count as lsblk does (util-linux size_to_human_string):
// powers of 1024 with a one-letter unit, and one decimal, rounded, only when it
// is not zero: 512B, 1K, 7.5G, 465.8G, 1T.
// It is the inventory's size, a wire format servers know from lsblk, and
// bty disks's table beside it; messages for people say sizes with units.Bytes.
func HumanSize(n int64) string {
	if n < 0 {
		return fmt.Sprintf("%dB", n)
	}
	b := uint64(n)
	exp := 0
	for exp < 60 && b >= 1<<(exp+10) {
		exp += 10
	}
	unit := "BKMGTPE"[exp/10]
	dec, frac := b>>exp, b&(1<<exp-1)
	if frac != 0 {
		// Three digits after the point, then rounded to one.
		if frac >= ^uint64(0)/1000 {
			frac = (frac / 1024 * 1000) >> (exp - 10)
		} else {
			frac = frac * 1000 >> exp
		}
		frac = (frac + 50) / 100
		if frac == 10 {
			dec, frac = dec+1, 0
		}
	}
	if frac != 0 {
		return fmt.Sprintf("%d.%d%c", dec, frac, unit)
	}
	return fmt.Sprintf("%d%c", dec, unit)
}
