package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// testImage writes a raw image of the given size to dir/disk.img: random
// stretches between large zero regions, so zero ranges and data both matter.
func testImage(t *testing.T, dir string, size int) (string, []byte) {
	t.Helper()
	img := make([]byte, size)
	for _, r := range [][2]int{{0, 300 << 10}, {1536 << 10, 2300 << 10}, {4 << 20, size}} {
		lo, hi := min(r[0], size), min(r[1], size)
		copy(img[lo:hi], randomBytes(t, hi-lo))
	}
	path := filepath.Join(dir, "disk.img")
	writeFile(t, path, img)
	return path, img
}

// imageForms are the formats bty reads, each with the command that makes it
// from a raw image ("" for the raw image itself).
var imageForms = []struct {
	name, suffix, tool, cmd string
}{
	{"raw", "", "", ""},
	{"raw", ".sparse.img", "cp", "cp --sparse=always %s %s"}, // zero regions as holes
	{"gzip", ".gz", "gzip", "gzip -c %s > %s"},
	{"xz", ".xz", "xz", "xz -T2 -c %s > %s"},
	{"xz", ".blocks.xz", "xz", "xz -T2 --block-size=1MiB -c %s > %s"}, // decoded in parallel
	{"zstd", ".zst", "zstd", "zstd -q -c %s > %s"},
	{"bzip2", ".bz2", "bzip2", "bzip2 -c %s > %s"},
	{"qcow2", ".qcow2", "qemu-img", "qemu-img convert -f raw -O qcow2 %s %s"},
}

func makeForm(t *testing.T, raw, suffix, cmd string) string {
	t.Helper()
	if cmd == "" {
		return raw
	}
	out := strings.TrimSuffix(raw, ".img") + ".img" + suffix
	if suffix == ".qcow2" {
		out = strings.TrimSuffix(raw, ".img") + ".qcow2"
	}
	sh(t, fmt.Sprintf(cmd, raw, out))
	return out
}

// TestFlashFormatsOnLoop flashes every format onto loop devices with 512- and
// 4096-byte sectors that were filled with random bytes, and compares.
func TestFlashFormatsOnLoop(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	size := 6<<20 + 1234 // a multiple of neither sector size
	raw, want := testImage(t, dir, size)
	for _, sector := range []int{512, 4096} {
		dev := newLoop(t, 8<<20, sector)
		for _, f := range imageForms {
			t.Run(fmt.Sprintf("%s%s/%d", f.name, f.suffix, sector), func(t *testing.T) {
				if f.tool != "" {
					requireTool(t, f.tool)
				}
				img := makeForm(t, raw, f.suffix, f.cmd)
				r := runBty(t, "--image", img, "--disk", dev, "--yes", "--verify", "--json")
				if r.code != 0 {
					t.Fatalf("bty --image %s = exit %d, want 0\n%s%s", filepath.Base(img), r.code, r.stdout, r.stderr)
				}
				if got := readDev(t, dev, size); !bytes.Equal(got, want) {
					t.Errorf("target after flashing %s: %s", filepath.Base(img), firstDiff(got, want))
				}
				res := lastResult(t, r.stdout)
				wantSize := int64(size)
				if f.name == "qcow2" {
					wantSize = (wantSize + 511) &^ 511 // qemu-img rounds the virtual size up to a sector
				}
				if res.Format != f.name || !res.Verified || res.ImageSize != wantSize {
					t.Errorf("result = format %q verified %v image_size %d, want %q true %d", res.Format, res.Verified, res.ImageSize, f.name, wantSize)
				}
				if res.Zeroed == 0 {
					t.Errorf("result bytes_zeroed = 0, want the zero regions zeroed rather than written")
				}
			})
		}
	}
}

// lastResult parses the final JSON line of a --json run.
func lastResult(t *testing.T, stdout string) resultLine {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var res resultLine
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil || res.Type != "result" {
		t.Fatalf("last line of --json output %q: %v, want a result line", lines[len(lines)-1], err)
	}
	return res
}

// TestFlashToFile writes to a regular file that exists with other content, and
// to one that does not exist yet.
func TestFlashToFile(t *testing.T) {
	dir := t.TempDir()
	raw, want := testImage(t, dir, 5<<20+77)
	existing := filepath.Join(dir, "existing")
	writeFile(t, existing, randomBytes(t, 9<<20))
	for _, target := range []string{existing, filepath.Join(dir, "new.img")} {
		r := runBty(t, "--image", raw, "--disk", target, "--yes")
		if r.code != 0 {
			t.Fatalf("bty --disk %s = exit %d, want 0\n%s", target, r.code, r.stderr)
		}
		got, err := os.ReadFile(target)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("file %s after flash: %s", filepath.Base(target), firstDiff(got, want))
		}
	}
}

// TestFlashIntegrityFailures: a corrupt stream, a truncated stream and a wrong
// digest each exit 4 and leave the target's first MiB zero.
func TestFlashIntegrityFailures(t *testing.T) {
	requireRoot(t)
	requireTool(t, "gzip", "xz")
	dir := t.TempDir()
	raw, _ := testImage(t, dir, 6<<20)
	gz := makeForm(t, raw, ".gz", "gzip -c %s > %s")
	xz := makeForm(t, raw, ".xz", "xz -T2 -c %s > %s")

	corrupt := filepath.Join(dir, "corrupt.img.gz")
	b, _ := os.ReadFile(gz)
	b[len(b)/2] ^= 0xff
	writeFile(t, corrupt, b)
	truncated := filepath.Join(dir, "truncated.img.xz")
	b, _ = os.ReadFile(xz)
	writeFile(t, truncated, b[:len(b)*2/3])
	wrongSum := strings.Repeat("ab", 32)

	dev := newLoop(t, 8<<20, 512)
	for _, tc := range []struct {
		name string
		args []string
		msg  string
	}{
		{"corrupt gzip", []string{"--image", corrupt}, "corrupt"},
		{"truncated xz", []string{"--image", truncated}, "corrupt or truncated"},
		{"wrong sha256", []string{"--image", raw, "--sha256", wrongSum}, "sha256 mismatch"},
		{"wrong sidecar", []string{"--image", withSidecar(t, raw, wrongSum)}, "sha256 mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sh(t, "head -c 2M /dev/urandom > "+dev)
			r := runBty(t, append(tc.args, "--disk", dev, "--yes")...)
			if r.code != 4 || !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("bty %s = exit %d %q, want exit 4 mentioning %q", tc.name, r.code, r.stderr, tc.msg)
			}
			if head := readDev(t, dev, 1<<20); !bytes.Equal(head, make([]byte, 1<<20)) {
				t.Errorf("first MiB after failed flash: %s, want all zero", firstDiff(head, make([]byte, 1<<20)))
			}
		})
	}
}

// withSidecar copies raw to a new name and gives it a .sha256 sidecar.
func withSidecar(t *testing.T, raw, sum string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sidecar.img")
	b, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, b)
	writeFile(t, p+".sha256", []byte(sum+"  sidecar.img\n"))
	return p
}

// TestFlashRefusedBeforeWriting: a tarball (exit 4) and an image larger than
// the target (exit 3) are refused before a byte is written.
func TestFlashRefusedBeforeWriting(t *testing.T) {
	requireRoot(t)
	requireTool(t, "tar", "gzip", "bzip2")
	dir := t.TempDir()
	raw, _ := testImage(t, dir, 6<<20)
	sh(t, fmt.Sprintf("cd %s && tar cf image.tar disk.img && gzip -c image.tar > image.tar.gz && bzip2 -c image.tar > image.tar.bz2", dir))
	big := filepath.Join(dir, "big.img")
	writeFile(t, big, randomBytes(t, 9<<20))
	dev := newLoop(t, 8<<20, 512)
	before := readDev(t, dev, 8<<20)
	for _, tc := range []struct {
		name, image string
		code        int
		msg         string
	}{
		{"tar", filepath.Join(dir, "image.tar"), 4, "extract first"},
		{"tar.gz", filepath.Join(dir, "image.tar.gz"), 4, "extract first"},
		{"tar.bz2", filepath.Join(dir, "image.tar.bz2"), 4, "extract first"}, // parallel bzip2 on 2+ cores
		{"too large", big, 3, "larger than the target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runBty(t, "--image", tc.image, "--disk", dev, "--yes")
			if r.code != tc.code || !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("bty --image %s = exit %d %q, want exit %d mentioning %q", tc.name, r.code, r.stderr, tc.code, tc.msg)
			}
			if after := readDev(t, dev, 8<<20); !bytes.Equal(after, before) {
				t.Errorf("target changed by a refused flash: %s", firstDiff(after, before))
			}
		})
	}
	_ = raw
}

// TestFlashOverrunUnknownSize: a gzip stream (size unknown up front) that
// decodes to more than the target holds fails cleanly with exit 3, and the
// target's first MiB is zero.
func TestFlashOverrunUnknownSize(t *testing.T) {
	requireRoot(t)
	requireTool(t, "gzip")
	dir := t.TempDir()
	big := filepath.Join(dir, "big.img")
	writeFile(t, big, randomBytes(t, 9<<20))
	gz := makeForm(t, big, ".gz", "gzip -c %s > %s")
	dev := newLoop(t, 8<<20, 4096)
	r := runBty(t, "--image", gz, "--disk", dev, "--yes")
	if r.code != 3 || !strings.Contains(r.stderr, "larger than the target") {
		t.Errorf("bty overrun = exit %d %q, want 3 and 'larger than the target'", r.code, r.stderr)
	}
	if head := readDev(t, dev, 1<<20); !bytes.Equal(head, make([]byte, 1<<20)) {
		t.Errorf("first MiB after overrun: %s, want zero", firstDiff(head, make([]byte, 1<<20)))
	}
}

// TestFlashMountedTarget: a loop disk with a mounted file system exits 3.
func TestFlashMountedTarget(t *testing.T) {
	requireRoot(t)
	requireTool(t, "mkfs.ext4", "mount")
	dir := t.TempDir()
	raw, _ := testImage(t, dir, 1<<20)
	dev := newLoop(t, 16<<20, 512)
	mnt := filepath.Join(dir, "mnt")
	sh(t, fmt.Sprintf("mkfs.ext4 -q %s && mkdir %s && mount %s %s", dev, mnt, dev, mnt))
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	r := runBty(t, "--image", raw, "--disk", dev, "--yes")
	if r.code != 3 || !strings.Contains(r.stderr, "mounted") {
		t.Errorf("bty onto mounted %s = exit %d %q, want 3 naming the mount", dev, r.code, r.stderr)
	}
}

// TestFlashGPTRelocated: a GPT image flashed onto a larger disk gets its backup
// GPT at the disk's real end, and sgdisk finds nothing wrong.
func TestFlashGPTRelocated(t *testing.T) {
	requireRoot(t)
	requireTool(t, "sgdisk")
	dir := t.TempDir()
	img := filepath.Join(dir, "gpt.img")
	sh(t, fmt.Sprintf("truncate -s 4M %s && sgdisk -n 1:2048:0 -t 1:8300 %s >/dev/null", img, img))
	dev := newLoop(t, 16<<20, 512)
	r := runBty(t, "--image", img, "--disk", dev, "--yes", "--verify", "--json")
	if r.code != 0 {
		t.Fatalf("bty = exit %d: %s", r.code, r.stdout+r.stderr)
	}
	if res := lastResult(t, r.stdout); !res.GPTRelocated {
		t.Errorf("result gpt_relocated = false, want true")
	}
	out, err := exec.Command("sgdisk", "-v", dev).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("sgdisk -v after flash: %v\n%s", err, out)
	}
	tail := readDev(t, dev, 16<<20)[16<<20-512:]
	if string(tail[:8]) != "EFI PART" {
		t.Errorf("last sector = %q..., want the backup GPT header", tail[:8])
	}
}

// TestUsageErrors: bad command lines exit 2 with a message naming the problem.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--image", "x.img", "--yes"}, "--disk is missing"},
		{[]string{"--disk", "x", "--yes"}, "--image is missing"},
		{[]string{"--image", "x.img"}, "needs a terminal"},
		{nil, "needs a terminal"},
		{[]string{"--image", "x", "--disk", "y", "--yes", "--sha256", "abc"}, "not 64 hex"},
		{[]string{"--frobnicate"}, "unknown flag --frobnicate"},
		{[]string{"--image", "x.img", "--disk", "y"}, "--yes"},
		{[]string{"--yes", "--image", "x.img", "--disk", "y", "extra"}, `unexpected argument "extra"`},
	} {
		r := runBty(t, tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("bty %v = exit %d %q, want 2 mentioning %q", tc.args, r.code, r.stderr, tc.msg)
		}
	}
	if r := runBty(t, "--image", "/nonexistent.img", "--disk", filepath.Join(t.TempDir(), "t"), "--yes"); r.code != 5 {
		t.Errorf("bty --image /nonexistent.img = exit %d %q, want 5", r.code, r.stderr)
	}
	// A /dev path that does not exist is a missing disk, not a file to create.
	img, _ := testImage(t, t.TempDir(), 4096)
	const missing = "/dev/bty-test-no-such-disk"
	if r := runBty(t, "--image", img, "--disk", missing, "--yes"); r.code != 3 || !strings.Contains(r.stderr, "run bty disks") {
		t.Errorf("bty --disk %s = exit %d %q, want 3 pointing to bty disks", missing, r.code, r.stderr)
	}
	if _, err := os.Lstat(missing); err == nil {
		os.Remove(missing)
		t.Errorf("bty --disk %s created it", missing)
	}
	if r := runBty(t, "--version"); r.code != 0 || !strings.HasPrefix(r.stdout, "bty ") {
		t.Errorf("bty --version = exit %d %q, want 0 and 'bty <version>'", r.code, r.stdout)
	}
}

// TestFlashFormatHint: the bytes decide the format; a name that says
// otherwise is reported in the result, not obeyed.
func TestFlashFormatHint(t *testing.T) {
	requireTool(t, "gzip")
	dir := t.TempDir()
	raw, want := testImage(t, dir, 2<<20+5)
	gz := makeForm(t, raw, ".gz", "gzip -c %s > %s")
	misnamed := filepath.Join(dir, "disk.img.xz")
	if err := os.Rename(gz, misnamed); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "out.img")
	r := runBty(t, "--image", misnamed, "--disk", target, "--yes", "--json")
	if r.code != 0 {
		t.Fatalf("bty = exit %d: %s", r.code, r.stdout+r.stderr)
	}
	res := lastResult(t, r.stdout)
	if res.Format != "gzip" || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "name says xz") {
		t.Errorf("result format %q warnings %q, want gzip and a warning that the name says xz", res.Format, res.Warnings)
	}
	if got := readDev(t, target, len(want)); !bytes.Equal(got, want) {
		t.Errorf("target: %s", firstDiff(got, want))
	}
}
