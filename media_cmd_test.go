package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"bty/internal/need"
	"bty/media"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64 // 0: an error
	}{
		{"1073741824", 1 << 30},
		{"8G", 8 << 30},
		{"8g", 8 << 30},
		{"8GiB", 8 << 30},
		{"8GB", 8 << 30},
		{"512M", 512 << 20},
		{"1T", 1 << 40},
		{"64K", 64 << 10},
		{"", 0},
		{"G", 0},
		{"-1G", 0},
		{"1.5G", 0},
		{"99999999999T", 0},
	} {
		got, err := parseSize(tc.in)
		if (err != nil) != (tc.want == 0) || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v, want %d", tc.in, got, err, tc.want)
		}
	}
}

// fakeKernel writes a file with a bzImage header (not signed) and a module
// tree for it, and returns their paths.
func fakeKernel(t *testing.T) (kernel, mods string) {
	t.Helper()
	dir := t.TempDir()
	kernel = filepath.Join(dir, "vmlinuz")
	k := make([]byte, 0x1000)
	copy(k[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(k[0x20e:], 0x200)
	copy(k[0x400:], "6.1.0-test #1\x00")
	writeFile(t, kernel, k)
	mods = filepath.Join(dir, "lib", "modules", "6.1.0-test")
	if err := os.MkdirAll(filepath.Join(mods, "kernel"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(mods, "modules.dep"), []byte("kernel/x.ko:\n"))
	writeFile(t, filepath.Join(mods, "kernel", "x.ko"), []byte("x"))
	return kernel, mods
}

// TestMediaUsage: bad invocations exit 2 with a message saying what to do.
func TestMediaUsage(t *testing.T) {
	kernel, mods := fakeKernel(t)
	dir := filepath.Dir(kernel)
	out := filepath.Join(dir, "out")

	cases := []struct {
		name string
		args []string
		msg  string
	}{
		{"no kind", []string{"media"}, "say netboot or usb"},
		{"unknown kind", []string{"media", "floppy"}, `unknown media kind "floppy"`},
		{"no kernel", []string{"media", "netboot", "--modules", mods, "--out", out}, "--kernel is missing"},
		{"not a kernel", []string{"media", "netboot", "--kernel", mods, "--modules", mods, "--out", out}, "kernel"},
		{"not modules", []string{"media", "netboot", "--kernel", kernel, "--modules", dir + "/nope", "--out", out, "--bty", "/bin/busybox", "--secure-boot=false"}, "not a kernel module directory"},
		{"bad size", []string{"media", "usb", "--kernel", kernel, "--modules", mods, "--out", out, "--size", "big"}, "--size"},
		{"dynamic bty", []string{"media", "netboot", "--kernel", kernel, "--modules", mods, "--out", out, "--bty", "/bin/ls", "--secure-boot=false"}, "CGO_ENABLED=0"},
		{"unsigned kernel", []string{"media", "netboot", "--kernel", kernel, "--modules", mods, "--out", out}, "linux-image-amd64"},
		{"a disk without --yes or a terminal", []string{"media", "usb", "--kernel", kernel, "--modules", mods, "--out", "/dev/sdz"}, "add --yes"},
		{"a size for a disk", []string{"media", "usb", "--kernel", kernel, "--modules", mods, "--out", "/dev/sdz", "--yes", "--size", "8G"}, "--size is for an image file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			switch tc.name {
			case "dynamic bty", "not modules":
				need.StaticBusybox(t) // checked before the bty and the modules
			case "unsigned kernel":
				need.StaticBusybox(t) // checked before the kernel's signature
				need.File(t, media.DefaultShim, "shim-signed")
				need.File(t, media.DefaultGrubNetEFI, "grub-efi-amd64-signed")
			}
			r := runBty(t, tc.args...)
			if r.code != exitUsage || !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("bty %s = exit %d, stderr %q; want exit %d and %q", strings.Join(tc.args, " "), r.code, r.stderr, exitUsage, tc.msg)
			}
		})
	}
}

// TestMediaUSBDiskAsks: bty media usb --out DISK without --yes asks on the
// terminal; n leaves the disk untouched (exit 130), y writes the stick.
func TestMediaUSBDiskAsks(t *testing.T) {
	requireRoot(t)
	need.StaticBusybox(t)
	requireTool(t, "grub-mkimage")
	need.File(t, filepath.Join(media.DefaultGrubPC, "boot.img"), "grub-pc-bin")
	need.File(t, media.DefaultShim, "shim-signed")
	need.File(t, media.DefaultGrubEFI, "grub-efi-amd64-signed")
	kernel, mods := fakeKernel(t)
	dev := newLoop(t, 128<<20, 512)
	before := readDev(t, dev, 1<<20)
	cmd := fmt.Sprintf("%s media usb --kernel %s --modules %s --bty /bin/busybox --secure-boot=false --out %s",
		shellQuote(btyBin), shellQuote(kernel), shellQuote(mods), dev)

	p := startPane(t, 200, 24, cmd)
	s := flat(p.waitFor("[y/N]"))
	if want := "Write the bty stick to " + dev + " ("; !strings.Contains(s, want) || !strings.Contains(s, "128 MiB") || !strings.Contains(s, "Everything on it is lost. It is not removable.") {
		t.Errorf("the question reads %q; want the disk, its size, and that all is lost", s)
	}
	p.typeText("n\n")
	s = flat(p.waitFor("exit="))
	if !strings.Contains(s, "not written: "+dev+" is untouched") || !strings.Contains(s, "exit=130") {
		t.Errorf("after n the screen reads %q; want untouched and exit 130", s)
	}
	if !bytes.Equal(readDev(t, dev, 1<<20), before) {
		t.Errorf("after n the disk was written")
	}

	p = startPane(t, 200, 24, cmd)
	p.waitFor("[y/N]")
	p.typeText("y\n")
	s = flat(p.waitFor("exit="))
	if !strings.Contains(s, "exit=0") {
		t.Fatalf("after y the screen reads %q; want exit 0", s)
	}
	if b := readDev(t, dev, 1024); string(b[512:520]) != "EFI PART" || b[510] != 0x55 {
		t.Errorf("after y %s holds no GPT", dev)
	}
}

// TestMediaUSBDiskMounted: bty media usb --out DISK --yes gets the checks of
// a headless flash: a loop disk with a mounted file system, which holds the
// --images directory too, exits 3 and is left as it was.
func TestMediaUSBDiskMounted(t *testing.T) {
	requireRoot(t)
	requireTool(t, "mkfs.ext4", "mount")
	kernel, mods := fakeKernel(t)
	dev := newLoop(t, 64<<20, 512)
	mnt := filepath.Join(t.TempDir(), "mnt")
	sh(t, fmt.Sprintf("mkfs.ext4 -q %s && mkdir %s && mount %s %s", dev, mnt, dev, mnt))
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	writeFile(t, filepath.Join(mnt, "a.img"), make([]byte, 4096))
	before := readDev(t, dev, 1<<20)
	r := runBty(t, "media", "usb", "--kernel", kernel, "--modules", mods, "--bty", "/bin/busybox", "--secure-boot=false", "--images", mnt, "--out", dev, "--yes")
	if r.code != exitRefused || !strings.Contains(r.stderr, "mounted") {
		t.Errorf("bty media usb --out mounted %s = exit %d %q, want %d naming the mount", dev, r.code, r.stderr, exitRefused)
	}
	if !bytes.Equal(readDev(t, dev, 1<<20), before) {
		t.Errorf("the refused disk was written")
	}
}
