package disks

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"bty/internal/need"
)

// needRoot skips a test that needs root and the named tools.
func needRoot(t *testing.T, tools ...string) {
	t.Helper()
	need.Root(t, "loop devices and mounts")
	need.Tools(t, tools...)
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// loopDevice binds a new file of size bytes to a free loop device, detached at
// the end of the test.
func loopDevice(t *testing.T, size int64, args ...string) (dev, file string) {
	t.Helper()
	file = filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(file, size); err != nil {
		t.Fatal(err)
	}
	dev = run(t, "losetup", append(append([]string{"--find", "--show"}, args...), file)...)
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v\n%s", dev, err, out)
		}
	})
	return dev, file
}

// listed returns the disk at path from the running system's List.
func listed(t *testing.T, path string) Disk {
	t.Helper()
	ds, err := List(Roots{})
	if err != nil {
		t.Fatalf("List() = %v", err)
	}
	for _, d := range ds {
		if d.Path == path {
			return d
		}
	}
	t.Fatalf("List() has no %s", path)
	return Disk{}
}

func TestLoopMountedThenUnmounted(t *testing.T) {
	needRoot(t, "losetup", "mkfs.ext4", "mount", "umount")
	// The kernel here parses no partition tables on loop devices, so the file
	// system goes on the whole loop device; partitions and holders are covered
	// by the fixtures.
	dev, file := loopDevice(t, 64<<20)
	name := filepath.Base(dev)
	run(t, "mkfs.ext4", "-q", dev)
	mnt := t.TempDir()
	run(t, "mount", dev, mnt)
	mounted := true
	t.Cleanup(func() {
		if mounted {
			if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v\n%s", mnt, err, out)
			}
		}
	})
	img := filepath.Join(mnt, "image.raw")
	if err := os.WriteFile(img, []byte("image"), 0o600); err != nil {
		t.Fatal(err)
	}

	d := listed(t, dev)
	if d.Transport != TranLoop || d.BackingFile != cleanPath(file) || d.SizeBytes != 64<<20 {
		t.Errorf("List()[%s] = tran %q, backing file %q, size %d, want loop, %s, %d", name, d.Transport, d.BackingFile, d.SizeBytes, file, 64<<20)
	}
	want := name + " is mounted at " + cleanPath(mnt)
	if v := d.Verdict(Check{}); v.Level != Refused || !contains(v.Reasons, want) {
		t.Errorf("%s.Verdict({}) = %v %q, want refused with %q", name, v.Level, v.Reasons, want)
	}
	want = "holds the image file being flashed (" + cleanPath(img) + ")"
	if v := d.Verdict(Check{ImagePath: img}); !contains(v.Reasons, want) {
		t.Errorf("%s.Verdict(ImagePath %s) = %v %q, want a reason %q", name, img, v.Level, v.Reasons, want)
	}

	run(t, "umount", mnt)
	mounted = false
	d = listed(t, dev)
	// Unmounted, a loop device is an ordinary non-removable disk: confirm.
	if v := d.Verdict(Check{}); v.Level != Confirm {
		t.Errorf("%s.Verdict({}) after umount = %v %q, want confirm", name, v.Level, v.Reasons)
	}
	if v := d.Verdict(Check{ImageSize: 64<<20 + 1}); v.Level != Refused {
		t.Errorf("%s.Verdict(ImageSize 64M+1) = %v %q, want refused", name, v.Level, v.Reasons)
	}
	want = "is backed by the image file being flashed (" + cleanPath(file) + ")"
	if v := d.Verdict(Check{ImagePath: file}); v.Level != Refused || !contains(v.Reasons, want) {
		t.Errorf("%s.Verdict(ImagePath %s) = %v %q, want refused with %q", name, file, v.Level, v.Reasons, want)
	}
	got, err := Resolve(Roots{}, dev)
	if err != nil || got.Path != dev {
		t.Errorf("Resolve(%s) = %s, %v, want %s", dev, got.Path, err, dev)
	}
	if _, _, err := ResolveTarget(Roots{}, dev, Check{}); err != nil {
		t.Errorf("ResolveTarget(%s) = %v, want allowed (confirm, named exactly)", dev, err)
	}
}

func TestLoopSectorSizeAndReadOnly(t *testing.T) {
	needRoot(t, "losetup")
	dev, _ := loopDevice(t, 8<<20, "--sector-size", "4096", "--read-only")
	d := listed(t, dev)
	if d.LogicalSector != 4096 || !d.ReadOnly {
		t.Errorf("List()[%s] = logical sector %d, read-only %v, want 4096, true", dev, d.LogicalSector, d.ReadOnly)
	}
	if v := d.Verdict(Check{}); v.Level != Refused || !contains(v.Reasons, "read-only") {
		t.Errorf("%s.Verdict({}) = %v %q, want refused, read-only", dev, v.Level, v.Reasons)
	}
}

func TestUnboundLoopNotListed(t *testing.T) {
	// Only reads: loop devices that no file is bound to are not disks.
	ds, err := List(Roots{})
	if err != nil {
		t.Skipf("List() = %v (no sysfs?)", err)
	}
	for _, d := range ds {
		if strings.HasPrefix(d.Name, "loop") && d.BackingFile == "" {
			t.Errorf("List() has %s, bound to no file", d.Path)
		}
	}
}

// TestRootDisk only reads: the disk holding / is listed and refused as the
// running system.
func TestRootDisk(t *testing.T) {
	if _, err := os.Stat("/sys/block"); err != nil {
		t.Skipf("no sysfs: %v", err)
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Skipf("no mountinfo: %v", err)
	}
	ms, err := parseMountinfo(bufio.NewReader(f))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	root, _ := holding(ms, "/")
	if root.source == "" {
		t.Skip("/proc/self/mountinfo has no mount of / (a chroot?)")
	}
	if !strings.HasPrefix(root.source, "/dev/") || strings.HasPrefix(root.dev, "0:") {
		t.Skipf("/ is %s from %s, not a block device (a container?)", root.fstype, root.source)
	}
	ds, err := List(Roots{})
	if err != nil {
		t.Fatalf("List() = %v", err)
	}
	for _, d := range ds {
		v := d.Verdict(Check{})
		for _, r := range v.Reasons {
			if strings.HasPrefix(r, "holds the running system (/ is mounted from ") {
				if v.Level != Refused {
					t.Errorf("%s.Verdict({}) = %v, want refused", d.Name, v.Level)
				}
				t.Logf("%s: %s", d.Path, r)
				return
			}
		}
	}
	t.Errorf("List() has no disk refused as holding / (mounted from %s, %s)", root.source, root.dev)
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
