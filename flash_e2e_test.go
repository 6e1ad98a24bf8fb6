package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
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
				// No digest is expected: a raw image is not hashed, any
				// other form is (its own bytes).
				wantSum, wantSkipped := "", true
				if f.name != "raw" {
					b, err := os.ReadFile(img)
					if err != nil {
						t.Fatal(err)
					}
					wantSum, wantSkipped = sha256Hex(b), false
				}
				if res.SHA256 != wantSum || res.SHA256Skipped != wantSkipped {
					t.Errorf("result sha256 %q sha256_skipped %v, want %q %v", res.SHA256, res.SHA256Skipped, wantSum, wantSkipped)
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
	// The same image with holes and a sidecar: hashed by the scout, holes
	// and all, while the writing read skips them.
	sparse := makeForm(t, raw, ".sparse.img", "cp --sparse=always %s %s")
	writeFile(t, sparse+".sha256", []byte(wrongSum+"  disk.img.sparse.img\n"))

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
		{"wrong sidecar, sparse image", []string{"--image", sparse}, "sha256 mismatch"},
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

// TestFlashTooSmall: an image larger than the target. Where that can be
// known before writing (a gzip trailer says at least as much), the target is
// untouched; where it is found only while writing (a gzip of several members,
// bzip2, a pipe), the target is written up to its end, its first MiB is zero,
// and the message and the JSON say so with the real counts. Both exit 3.
func TestFlashTooSmall(t *testing.T) {
	requireRoot(t)
	requireTool(t, "gzip", "bzip2")
	dir := t.TempDir()
	big := filepath.Join(dir, "big.img")
	img := randomBytes(t, 5<<20)
	writeFile(t, big, img)
	gz := makeForm(t, big, ".gz", "gzip -c %s > %s")
	bz := makeForm(t, big, ".bz2", "bzip2 -c %s > %s")
	// A second, small member: the trailer names only its size.
	members := filepath.Join(dir, "members.img.gz")
	sh(t, fmt.Sprintf("head -c 1000 /dev/urandom | gzip -c | cat %s - > %s", gz, members))
	dev := newLoop(t, 4<<20, 4096)
	const devSize = 4 << 20

	t.Run("refused before writing", func(t *testing.T) {
		before := readDev(t, dev, devSize)
		r := runBty(t, "--image", gz, "--disk", dev, "--yes", "--json")
		res := lastResult(t, r.stdout)
		if r.code != 3 || !strings.Contains(res.Error, "decodes to at least 5242880 bytes") || !strings.Contains(res.Error, dev+" is untouched") {
			t.Errorf("bty --image %s = exit %d %q, want 3 naming the size from the trailer and the target untouched", filepath.Base(gz), r.code, res.Error)
		}
		if res.TargetState != "untouched" || res.Written != 0 {
			t.Errorf("result target_state %q bytes_written %d, want untouched and 0", res.TargetState, res.Written)
		}
		if after := readDev(t, dev, devSize); !bytes.Equal(after, before) {
			t.Errorf("target changed by a refused flash: %s", firstDiff(after, before))
		}
	})
	for _, tc := range []struct {
		name string
		args []string
		pipe string // a file piped to standard input
	}{
		{"gzip of two members", []string{"--image", members}, ""},
		{"bzip2", []string{"--image", bz}, ""},
		{"pipe", []string{"--image", "-"}, big},
	} {
		t.Run("found while writing/"+tc.name, func(t *testing.T) {
			sh(t, "head -c 2M /dev/urandom > "+dev)
			args := append(tc.args, "--disk", dev, "--yes", "--json")
			var r result
			if tc.pipe != "" {
				r = runBtyStdin(t, tc.pipe, args...)
			} else {
				r = runBty(t, args...)
			}
			res := lastResult(t, r.stdout)
			want := fmt.Sprintf("the target is too small: %s was written up to its end (%d bytes of an image of at least", dev, devSize)
			if r.code != 3 || !strings.Contains(res.Error, want) || !strings.Contains(res.Error, "left without a partition table") || strings.Contains(res.Error, "refused") {
				t.Errorf("bty %s = exit %d %q, want 3 saying %q and that it was left without a partition table", tc.name, r.code, res.Error, want)
			}
			// Everything but the held-back first MiB was written.
			if res.TargetState != "no_partition_table" || res.Written+res.Zeroed != devSize-1<<20 {
				t.Errorf("result target_state %q, %d bytes written and %d zeroed, want no_partition_table and %d in all", res.TargetState, res.Written, res.Zeroed, devSize-1<<20)
			}
			got := readDev(t, dev, devSize)
			if !bytes.Equal(got[:1<<20], make([]byte, 1<<20)) {
				t.Errorf("first MiB after an overrun is not zero")
			}
			if !bytes.Equal(got[1<<20:], img[1<<20:devSize]) {
				t.Errorf("the target is not written up to its end: %s", firstDiff(got[1<<20:], img[1<<20:devSize]))
			}
		})
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

// TestFlashFailureResult: a flash that fails keeps in its JSON result what
// was known: a digest mismatch found after 5 MiB were written reports them,
// the real digest next to the expected one and where that came from, and a
// target left without a partition table.
func TestFlashFailureResult(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	raw, img := testImage(t, dir, 6<<20)
	wrong := strings.Repeat("ab", 32)
	dev := newLoop(t, 8<<20, 512)
	r := runBty(t, "--image", raw, "--disk", dev, "--yes", "--json", "--sha256", wrong)
	res := lastResult(t, r.stdout)
	if r.code != 4 || res.OK || res.ExitCode != 4 || !strings.Contains(res.Error, "sha256 mismatch") {
		t.Fatalf("bty --sha256 (wrong) = exit %d, result %+v, want exit 4 and a sha256 mismatch", r.code, res)
	}
	for _, c := range []struct {
		field     string
		got, want any
	}{
		{"image", res.Image, raw},
		{"target", res.Target, dev},
		{"format", res.Format, "raw"},
		{"sha256", res.SHA256, sha256Hex(img)},
		{"sha256_expected", deref(res.SHA256Expected), wrong},
		{"sha256_source", deref(res.SHA256Source), "flag"},
		{"source_bytes", res.SourceBytes, int64(6 << 20)},
		{"bytes_written + bytes_zeroed", res.Written + res.Zeroed, int64(5 << 20)}, // all but the first MiB
		{"target_state", res.TargetState, "no_partition_table"},
		{"seconds > 0", res.Seconds > 0, true},
	} {
		if c.got != c.want {
			t.Errorf("failure result %s = %v, want %v", c.field, c.got, c.want)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return "<null>"
	}
	return *s
}

// TestFlashDigestSource: the result says whether the digest was checked and
// against what, in the text summary and in the JSON result.
func TestFlashDigestSource(t *testing.T) {
	requireTool(t, "gzip")
	dir := t.TempDir()
	raw, img := testImage(t, dir, 1<<20+3)
	sum := sha256Hex(img)
	sidecar := withSidecar(t, raw, sum)
	gz := makeForm(t, raw, ".gz", "gzip -c %s > %s")
	gzBytes, err := os.ReadFile(gz)
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "out.img")
	for _, tc := range []struct {
		name   string
		args   []string
		source string // "" for null
		sum    string // the digest reported: "" for none
		text   string
	}{
		{"none", []string{"--image", raw}, "", "", "sha256 not computed: a raw image is hashed only to check an expected digest"},
		{"none, gzip", []string{"--image", gz}, "", sha256Hex(gzBytes), "sha256 " + sha256Hex(gzBytes) + ": not checked: no expected digest is known"},
		{"sidecar", []string{"--image", sidecar}, "sidecar", sum, "sha256 " + sum + ": matches the .sha256 sidecar"},
		{"flag over sidecar", []string{"--image", sidecar, "--sha256", strings.ToUpper(sum)}, "flag", sum, "sha256 " + sum + ": matches --sha256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(tc.args, "--disk", target, "--yes")
			r := runBty(t, append(args, "--json")...)
			if r.code != 0 {
				t.Fatalf("bty %v = exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
			}
			res := lastResult(t, r.stdout)
			if res.SHA256 != tc.sum || res.SHA256Skipped != (tc.sum == "") {
				t.Errorf("sha256 %q sha256_skipped %v, want %q %v", res.SHA256, res.SHA256Skipped, tc.sum, tc.sum == "")
			}
			if !strings.Contains(r.stdout, `"sha256_skipped":`) {
				t.Errorf("result line %s has no sha256_skipped", r.stdout)
			}
			wantExpected := sum
			if tc.source == "" {
				wantExpected = ""
			}
			if got, want := strings.TrimPrefix(deref(res.SHA256Source), "<null>"), tc.source; got != want {
				t.Errorf("sha256_source = %s, want %q (empty: null)", deref(res.SHA256Source), want)
			}
			if got := strings.TrimPrefix(deref(res.SHA256Expected), "<null>"); got != wantExpected {
				t.Errorf("sha256_expected = %s, want %q (empty: null)", deref(res.SHA256Expected), wantExpected)
			}
			r = runBty(t, args...)
			if r.code != 0 || !strings.Contains(r.stdout, tc.text) {
				t.Errorf("bty %v = exit %d, stdout %q, want it to say %q", args, r.code, r.stdout, tc.text)
			}
		})
	}
}

// TestFlashProgressJSON: --json reports the phases in order, starting with
// the opening phase the README promises, however quick.
func TestFlashProgressJSON(t *testing.T) {
	raw, _ := testImage(t, t.TempDir(), 2<<20)
	r := runBty(t, "--image", raw, "--disk", filepath.Join(t.TempDir(), "out.img"), "--yes", "--json")
	if r.code != 0 {
		t.Fatalf("bty = exit %d\n%s", r.code, r.stderr)
	}
	var phases []string
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var p struct{ Type, Phase string }
		if err := json.Unmarshal([]byte(l), &p); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if p.Type == "progress" && (len(phases) == 0 || phases[len(phases)-1] != p.Phase) {
			phases = append(phases, p.Phase)
		}
	}
	if got, want := strings.Join(phases, " "), "opening writing finishing done"; got != want {
		t.Errorf("progress phases = %s, want %s", got, want)
	}
}

// TestFlashImageInput: a directory as --image is a usage error (exit 2); a
// refused connection is a source error that names the URL once and says what
// to check; --image - reads a pipe, checked against --sha256, and a pipe that
// ends early or a qcow2 image (which needs random access) fails without a
// second read.
func TestFlashImageInput(t *testing.T) {
	requireRoot(t)
	requireTool(t, "xz", "qemu-img")
	dir := t.TempDir()
	raw, img := testImage(t, dir, 3<<20+99)
	xz := makeForm(t, raw, ".xz", "xz -T2 -c %s > %s")
	qcow := makeForm(t, raw, ".qcow2", "qemu-img convert -f raw -O qcow2 %s %s")
	truncated := filepath.Join(dir, "truncated.img.xz")
	b, _ := os.ReadFile(xz)
	writeFile(t, truncated, b[:len(b)/2])
	dev := newLoop(t, 8<<20, 512)

	if r := runBty(t, "--image", dir, "--disk", dev, "--yes"); r.code != 2 || !strings.Contains(r.stderr, "is a directory") {
		t.Errorf("bty --image DIR = exit %d %q, want 2 saying it is a directory", r.code, r.stderr)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/disk.img"
	ln.Close() // nothing listens there now: the connection is refused
	r := runBty(t, "--image", url, "--disk", dev, "--yes")
	if r.code != 5 || strings.Count(r.stderr, url) != 1 || !strings.Contains(r.stderr, "check the network and the URL") || !strings.Contains(r.stderr, dev+" is untouched") {
		t.Errorf("bty --image %s (refused) = exit %d %q, want 5 naming the URL once, what to check, and the target untouched", url, r.code, r.stderr)
	}

	r = runBtyStdin(t, xz, "--image", "-", "--disk", dev, "--yes", "--json", "--sha256", sha256Hex(b))
	if r.code != 0 {
		t.Fatalf("xz | bty --image - = exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := readDev(t, dev, len(img)); !bytes.Equal(got, img) {
		t.Errorf("target after xz | bty --image -: %s", firstDiff(got, img))
	}
	if res := lastResult(t, r.stdout); res.Format != "xz" || res.Image != "standard input" || deref(res.SHA256Source) != "flag" {
		t.Errorf("result = format %q image %q sha256_source %s, want xz from standard input checked against the flag", res.Format, res.Image, deref(res.SHA256Source))
	}
	for _, tc := range []struct {
		name, file string
		args       []string
		code       int
		msg        string
	}{
		{"wrong digest", raw, []string{"--sha256", strings.Repeat("ab", 32)}, 4, "sha256 mismatch"},
		{"truncated xz", truncated, nil, 4, "corrupt or truncated"},
		{"qcow2", qcow, nil, 5, "can be read only once"},
	} {
		t.Run("pipe/"+tc.name, func(t *testing.T) {
			r := runBtyStdin(t, tc.file, append([]string{"--image", "-", "--disk", dev, "--yes"}, tc.args...)...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("cat %s | bty --image - = exit %d %q, want %d mentioning %q", filepath.Base(tc.file), r.code, r.stderr, tc.code, tc.msg)
			}
		})
	}
	if r := runBtyStdin(t, raw, "--image", "-", "--disk", dev); r.code != 2 || !strings.Contains(r.stderr, "add --yes") {
		t.Errorf("bty --image - without --yes = exit %d %q, want 2 asking for --yes", r.code, r.stderr)
	}
}
