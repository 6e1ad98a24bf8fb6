// Package need lets tests skip, with a message that says what to install,
// when a host tool they use is missing. A test never fails for a missing
// tool; CI (.ci/run) installs them all.
package need

import (
	"debug/elf"
	"os"
	"os/exec"
	"testing"
)

// Debian packages that provide the commands the tests run.
var packages = map[string]string{
	"bzip2":              "bzip2",
	"cpio":               "cpio",
	"fsck.exfat":         "exfatprogs",
	"fsck.vfat":          "dosfstools",
	"gzip":               "gzip",
	"losetup":            "mount",
	"mdir":               "mtools",
	"mkfs.ext4":          "e2fsprogs",
	"mount":              "mount",
	"mtype":              "mtools",
	"pigz":               "pigz",
	"qemu-img":           "qemu-utils",
	"qemu-io":            "qemu-utils",
	"qemu-system-x86_64": "qemu-system-x86",
	"sgdisk":             "gdisk",
	"tar":                "tar",
	"tmux":               "tmux",
	"umount":             "mount",
	"xz":                 "xz-utils",
	"zstd":               "zstd",
}

// Tools skips t unless every command is on PATH.
func Tools(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			pkg := packages[n]
			if pkg == "" {
				pkg = n
			}
			t.Skipf("%s is not installed: apt-get install %s (.ci/run installs it)", n, pkg)
		}
	}
}

// Root skips t unless it runs as root; why says what needs it.
func Root(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root for %s: run the tests as root (CI does)", why)
	}
}

// StaticBusybox skips t unless /bin/busybox is Debian's static busybox, the
// one the boot media's initramfs can run (Debian's busybox package is
// dynamically linked).
func StaticBusybox(t testing.TB) {
	t.Helper()
	const path = "/bin/busybox"
	f, err := elf.Open(path)
	if err != nil {
		t.Skipf("%s: %v: apt-get install busybox-static (.ci/run installs it)", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Skipf("%s is dynamically linked: apt-get install busybox-static (.ci/run installs it)", path)
		}
	}
}
