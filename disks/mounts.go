package disks

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	dev    string // major:minor as the kernel reports it (0:N for btrfs, tmpfs...)
	point  string // mount point, unescaped
	fstype string
	source string // "/dev/sda1", "tmpfs", ...
	// name is the kernel name of the block device mounted, "" when it is none
	// (filled in by List).
	name string
}

// parseMountinfo reads the format of proc(5), /proc/[pid]/mountinfo:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// Fields 3 and 5 are the device number and the mount point; after the optional
// fields and the "-" separator come the file system type and the mount source.
func parseMountinfo(r io.Reader) ([]mountEntry, error) {
	var ms []mountEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 6 || sep < 0 || sep+2 >= len(f) {
			return nil, fmt.Errorf("mountinfo line %d: malformed: %q", n, sc.Text())
		}
		ms = append(ms, mountEntry{
			dev:    f[2],
			point:  unescapeOctal(f[4]),
			fstype: f[sep+1],
			source: unescapeOctal(f[sep+2]),
		})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("mountinfo: %w", err)
	}
	return ms, nil
}

// swapEntry is one active swap area of /proc/swaps.
type swapEntry struct {
	path string // /dev/sda3, /dev/dm-1, /swapfile
	file bool   // a swap file, not a device
}

// parseSwaps reads /proc/swaps:
//
//	Filename        Type        Size     Used  Priority
//	/dev/sda3       partition   8388604  0     -2
//	/swapfile       file        2097148  0     -3
//
// The kernel escapes spaces, tabs, newlines and backslashes in the file name as
// octal, like mountinfo.
func parseSwaps(r io.Reader) ([]swapEntry, error) {
	var ss []swapEntry
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if n == 1 || len(f) == 0 {
			continue // header
		}
		if len(f) < 2 {
			return nil, fmt.Errorf("swaps line %d: malformed: %q", n, sc.Text())
		}
		ss = append(ss, swapEntry{path: unescapeOctal(f[0]), file: f[1] == "file"})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("swaps: %w", err)
	}
	return ss, nil
}

// unescapeOctal undoes the kernel's \ooo escaping of white space and backslashes
// in mount points and swap file names.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// holding returns the mount that holds path: the one whose mount point is the
// longest prefix of path, the last mounted among equals (the visible one). It
// returns false when no mount matches (a relative path, an empty table).
func holding(ms []mountEntry, path string) (mountEntry, bool) {
	var best mountEntry
	found := false
	for _, m := range ms {
		if !under(path, m.point) {
			continue
		}
		if !found || len(m.point) >= len(best.point) {
			best, found = m, true
		}
	}
	return best, found
}

// under reports whether path is dir or inside it.
func under(path, dir string) bool {
	if dir == "/" {
		return strings.HasPrefix(path, "/")
	}
	return path == dir || strings.HasPrefix(path, dir+"/")
}
