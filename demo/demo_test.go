package demo

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"bty/catalog"
	"bty/flash"
)

// TestImagesFlash flashes every demo image into a file and checks that the
// file is the raw disk, and that qemu-img reads the qcow2 the same way.
func TestImagesFlash(t *testing.T) {
	start := time.Now()
	imgs, err := Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("generated %d images in %s", len(imgs), time.Since(start))
	raw := Disk()
	total := 0
	for _, img := range imgs {
		total += len(img.Data)
		t.Run(img.Name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, img.Name)
			if err := os.WriteFile(src, img.Data, 0o644); err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(dir, "target.img")
			if _, err := flash.Flash(context.Background(), catalog.NewFileSource(src), target, flash.Options{}); err != nil {
				t.Fatalf("Flash(%s) = %v", img.Name, err)
			}
			got, err := os.ReadFile(target)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, raw) {
				t.Errorf("Flash(%s) wrote %d bytes that differ from the raw disk (%d bytes)", img.Name, len(got), len(raw))
			}
		})
	}
	t.Logf("demo image set: %d bytes", total)
}

func TestQcow2QemuImg(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img is not installed (.ci/run installs qemu-utils)")
	}
	dir := t.TempDir()
	b, err := qcow2(Disk())
	if err != nil {
		t.Fatal(err)
	}
	q := filepath.Join(dir, "d.qcow2")
	if err := os.WriteFile(q, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("qemu-img", "check", q).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img check: %v\n%s", err, out)
	}
	r := filepath.Join(dir, "d.raw")
	if out, err := exec.Command("qemu-img", "convert", "-O", "raw", q, r).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, out)
	}
	got, err := os.ReadFile(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, Disk()) {
		t.Error("qemu-img convert of the demo qcow2 differs from the raw disk")
	}
}

func TestGPTSgdisk(t *testing.T) {
	if _, err := exec.LookPath("sgdisk"); err != nil {
		t.Skip("sgdisk is not installed (.ci/run installs gdisk)")
	}
	p := filepath.Join(t.TempDir(), "d.img")
	if err := os.WriteFile(p, Disk(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sgdisk", "-v", p).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("No problems found")) {
		t.Fatalf("sgdisk -v: %v\n%s", err, out)
	}
}
