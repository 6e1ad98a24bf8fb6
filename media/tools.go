package media

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"strings"
)

// Host files the builder takes, and the Debian packages that provide them.
const (
	DefaultBusybox = "/bin/busybox"
	DefaultCACerts = "/etc/ssl/certs/ca-certificates.crt"
)

// checkStatic reports whether the ELF executable at path runs without a
// dynamic loader: an initramfs has no libc, so a binary with a PT_INTERP
// program header (dynamically linked) cannot run there.
func checkStatic(path, what, fix string) error {
	f, err := elf.Open(path)
	if err != nil {
		return inputf("%s %s: not an executable: %v", what, path, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return inputf("%s %s is built for %s, not x86-64", what, path, f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return inputf("%s %s is dynamically linked and cannot run in the initramfs: %s", what, path, fix)
		}
	}
	return nil
}

// checkBusybox finds a static busybox.
func checkBusybox(path string) error {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if path == DefaultBusybox {
			return &MissingToolError{Path: path, Package: "busybox-static", Why: "the init's shell and tools"}
		}
		return inputf("busybox %s does not exist", path)
	}
	return checkStatic(path, "busybox", "install busybox-static (Debian's busybox package is dynamic)")
}

// kernelVersion reads the version string of an x86 bzImage: the boot protocol
// header ("HdrS" at 0x202) points at it (kernel_version at 0x20e, an offset
// from 0x200). It returns the first word, e.g. "6.1.0-56-amd64".
func kernelVersion(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", inputf("kernel: %w", err)
	}
	if len(b) < 0x210 || string(b[0x202:0x206]) != "HdrS" {
		return "", inputf("kernel %s is not an x86 bzImage (no HdrS boot header)", path)
	}
	off := int(binary.LittleEndian.Uint16(b[0x20e:])) + 0x200
	if off >= len(b) {
		return "", inputf("kernel %s: version offset out of range", path)
	}
	end := bytes.IndexByte(b[off:], 0)
	if end < 0 {
		return "", inputf("kernel %s: unterminated version string", path)
	}
	v, _, _ := strings.Cut(string(b[off:off+end]), " ")
	return v, nil
}
