// Package units writes quantities for people: sizes in IEC units. It is a
// leaf that every package may import, so that the wizard, headless mode's
// progress line and result, bty images and the disks' verdicts say a size
// the same way. (The inventory's lsblk-style size, "7.5G", is a wire format:
// disks.HumanSize.)
package units

import "fmt"

// Bytes is a size in IEC units, as people read it: "512 B", "14.9 GiB",
// "100 MiB", never "1024 KiB" or "100.0 MiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for v := n / unit; v >= unit; v /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	if v >= 1023.5 && exp < 5 {
		// Rounded, it would read "1024 KiB": say "1.0 MiB".
		v /= unit
		exp++
	}
	if v >= 99.95 { // "100 MiB", not "100.0 MiB"
		return fmt.Sprintf("%.0f %ciB", v, "KMGTPE"[exp])
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTPE"[exp])
}
