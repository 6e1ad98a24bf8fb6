package disks

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// udevInfo is the udev database record of a block device,
// /run/udev/data/b<major>:<minor>: "E:KEY=value" properties and "S:link" symlinks
// relative to /dev. It is empty when udev does not run (a minimal initramfs).
type udevInfo struct {
	props map[string]string
	links []string
}

func readUdev(run, dev string) udevInfo {
	u := udevInfo{props: map[string]string{}}
	f, err := os.Open(filepath.Join(run, "udev", "data", "b"+dev))
	if err != nil {
		return u // no udev, or no record: sysfs alone has to do
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "E:"):
			if k, v, ok := strings.Cut(line[2:], "="); ok {
				u.props[k] = v
			}
		case strings.HasPrefix(line, "S:"):
			u.links = append(u.links, line[2:])
		}
	}
	return u
}

// get returns the first non-empty property of keys; for a KEY_ENC property (udev's
// \xNN-encoded raw string) it returns the decoded, trimmed value.
func (u udevInfo) get(keys ...string) string {
	for _, k := range keys {
		v := u.props[k]
		if strings.HasSuffix(k, "_ENC") {
			v = decodeHexEscapes(v)
		}
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}

// decodeHexEscapes undoes udev's \xNN encoding (ID_MODEL_ENC, ID_VENDOR_ENC).
func decodeHexEscapes(s string) string {
	if !strings.Contains(s, `\x`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			if c, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
				b.WriteByte(byte(c))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
