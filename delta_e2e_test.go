package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// deltaVersions writes two versions of a GPT disk image of a little over 12
// MiB (a multiple of 512 bytes, not of 4096): v1 with random stretches
// between zero regions, and v2 that differs from it in scattered 4 KiB
// blocks, a stretch of data made zero, a zero region given data, and its
// partition's name (both GPT headers and their CRCs).
func deltaVersions(t *testing.T, dir string) (v1, v2 string, img2 []byte) {
	t.Helper()
	requireTool(t, "sgdisk")
	size := 12<<20 + 1536
	img := make([]byte, size)
	for _, r := range [][2]int{{1 << 20, 3 << 20}, {5 << 20, 7<<20 + 4096*3}, {9 << 20, size}} {
		copy(img[r[0]:r[1]], randomBytes(t, r[1]-r[0]))
	}
	v1 = filepath.Join(dir, "v1.img")
	writeFile(t, v1, img)
	sh(t, fmt.Sprintf("sgdisk -n 1:2048:0 -t 1:8300 -c 1:one %s >/dev/null", v1))
	img, _ = os.ReadFile(v1)
	for _, off := range []int{1<<20 + 8192, 2<<20 + 4096*7, 6 << 20, 10<<20 + 12288} {
		copy(img[off:off+4096], randomBytes(t, 4096))
	}
	clear(img[5<<20+65536 : 5<<20+65536*3])
	copy(img[8<<20:8<<20+65536], randomBytes(t, 65536))
	v2 = filepath.Join(dir, "v2.img")
	writeFile(t, v2, img)
	sh(t, fmt.Sprintf("sgdisk -c 1:two %s >/dev/null", v2))
	img2, _ = os.ReadFile(v2)
	return v1, v2, img2
}

// loopHolding makes a loop device of the given sector size over a file
// holding content, detached when the test ends.
func loopHolding(t *testing.T, content []byte, sector int) string {
	t.Helper()
	back := filepath.Join(t.TempDir(), "backing")
	writeFile(t, back, content)
	out, err := exec.Command("losetup", "--find", "--show", "--sector-size", strconv.Itoa(sector), back).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v: %s", dev, err, out)
		}
	})
	return dev
}

// sectorsWritten is the count of sectors written to a block device since it
// was set up (/sys/block/NAME/stat, field 7).
func sectorsWritten(t *testing.T, dev string) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "stat"))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	n, err := strconv.ParseInt(f[6], 10, 64)
	if err != nil {
		t.Fatalf("%s stat %q: %v", dev, b, err)
	}
	return n
}

func flashOK(t *testing.T, args ...string) resultLine {
	t.Helper()
	r := runBty(t, append(args, "--yes", "--json")...)
	if r.code != 0 {
		t.Fatalf("bty %s = exit %d, want 0\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return lastResult(t, r.stdout)
}

// TestDeltaLikeFull: on targets that hold the same image, an older version,
// random bytes, a shorter image, a longer one, with 512- and 4096-byte
// sectors, and one the image fills to its end, --delta leaves the target
// byte for byte as a full flash of the same target does (the whole device:
// the relocated backup GPT too), and writes less where the target held
// much of the image: the changes, and at most 4 MiB at the ends (their
// wipe, the first MiB and the device's last MiB written again).
func TestDeltaLikeFull(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	v1, v2, img2 := deltaVersions(t, dir)
	short := filepath.Join(dir, "short.img")
	writeFile(t, short, img2[:5<<20])
	long := filepath.Join(dir, "long.img")
	writeFile(t, long, append(append([]byte(nil), img2...), randomBytes(t, 9<<20)...))
	for _, tc := range []struct {
		name   string
		sector int
		size   int64
		before string // image flashed onto the target first; "" leaves random bytes
		most   int64  // at most this much written and zeroed by the delta; 0: no limit
	}{
		{"same", 512, 32 << 20, v2, 0},
		{"older", 512, 32 << 20, v1, 5 << 20},
		{"older 4096", 4096, 32 << 20, v1, 5 << 20},
		{"random", 512, 32 << 20, "", 0},
		{"random 4096", 4096, 32 << 20, "", 0},
		{"shorter", 512, 32 << 20, short, 0},
		{"longer", 4096, 32 << 20, long, 5 << 20},
		{"fills the device", 512, int64(len(img2)), v1, 5 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := randomBytes(t, int(tc.size))
			full, delta := loopHolding(t, start, tc.sector), loopHolding(t, start, tc.sector)
			if tc.before != "" {
				for _, dev := range []string{full, delta} {
					flashOK(t, "--image", tc.before, "--disk", dev)
				}
			}
			flashOK(t, "--image", v2, "--disk", full)
			was := sectorsWritten(t, delta)
			res := flashOK(t, "--image", v2, "--disk", delta, "--delta", "--verify")
			wrote := (sectorsWritten(t, delta) - was) * 512
			want, got := readDev(t, full, int(tc.size)), readDev(t, delta, int(tc.size))
			if !bytes.Equal(got, want) {
				t.Fatalf("delta target vs full flash: %s", firstDiff(got, want))
			}
			// The image but where the relocated GPT differs from it.
			if mid := got[1<<20 : len(img2)-1<<20]; !bytes.Equal(mid, img2[1<<20:len(img2)-1<<20]) {
				t.Fatalf("delta target vs image: %s", firstDiff(mid, img2[1<<20:len(img2)-1<<20]))
			}
			if !res.Verified || res.TargetRead < int64(len(img2))/2 {
				t.Errorf("result verified %v, bytes_read_from_target %d: want verified, the target read", res.Verified, res.TargetRead)
			}
			t.Logf("written %d, zeroed %d, skipped %d, read %d; the device counted %d bytes written", res.Written, res.Zeroed, res.Skipped, res.TargetRead, wrote)
			switch {
			case tc.name == "same":
				if wrote != 0 || res.Written != 0 || res.Zeroed != 0 || res.Skipped != int64(len(img2)) {
					t.Errorf("same image: %d bytes written to the device, result written %d zeroed %d skipped %d; want nothing written, %d skipped",
						wrote, res.Written, res.Zeroed, res.Skipped, len(img2))
				}
			case tc.most > 0 && (wrote > tc.most || res.Written+res.Zeroed > tc.most):
				t.Errorf("%s: %d bytes written to the device, result written %d + zeroed %d; want at most %d", tc.name, wrote, res.Written, res.Zeroed, tc.most)
			}
		})
	}
}

// TestDeltaIntegrity: a delta whose source fails its digest exits 4 like a
// full flash. On a target that held an older version it leaves no partition
// table; on one that held the very bytes it read, nothing was written and the
// target is untouched, as the result says.
func TestDeltaIntegrity(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	v1, v2, _ := deltaVersions(t, dir)
	wrong := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		before, state string
	}{
		{v1, "no_partition_table"},
		{v2, "untouched"},
	} {
		t.Run(tc.state, func(t *testing.T) {
			dev := loopHolding(t, randomBytes(t, 32<<20), 512)
			flashOK(t, "--image", tc.before, "--disk", dev)
			held := readDev(t, dev, 32<<20)
			r := runBty(t, "--image", v2, "--disk", dev, "--yes", "--delta", "--json", "--sha256", wrong)
			if r.code != 4 || !strings.Contains(r.stdout, "sha256 mismatch") {
				t.Fatalf("bty --delta with a wrong digest = exit %d, want 4 and a sha256 mismatch\n%s%s", r.code, r.stdout, r.stderr)
			}
			res := lastResult(t, r.stdout)
			got := readDev(t, dev, 32<<20)
			if res.TargetState != tc.state {
				t.Errorf("target_state = %q, want %q", res.TargetState, tc.state)
			}
			switch tc.state {
			case "untouched":
				if !bytes.Equal(got, held) {
					t.Errorf("target after the failed delta: %s, want it as it was", firstDiff(got, held))
				}
			default:
				if !bytes.Equal(got[:1<<20], make([]byte, 1<<20)) {
					t.Errorf("first MiB after the failed delta: %s, want zeros", firstDiff(got[:1<<20], make([]byte, 1<<20)))
				}
				if tail := got[len(got)-512:]; bytes.Contains(tail, []byte("EFI PART")) {
					t.Errorf("the backup GPT at the device's end survived the failed delta")
				}
			}
		})
	}
}

// TestDeltaToFile: --delta onto a regular file that holds an older version,
// a longer file, and none: the file ends as the image.
func TestDeltaToFile(t *testing.T) {
	requireTool(t, "sgdisk")
	dir := t.TempDir()
	v1, v2, img2 := deltaVersions(t, dir)
	older := filepath.Join(dir, "older")
	b1, _ := os.ReadFile(v1)
	writeFile(t, older, b1)
	longer := filepath.Join(dir, "longer")
	writeFile(t, longer, randomBytes(t, 20<<20))
	for _, target := range []string{older, longer, filepath.Join(dir, "new")} {
		res := flashOK(t, "--image", v2, "--disk", target, "--delta", "--verify")
		got, err := os.ReadFile(target)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, img2) {
			t.Errorf("%s after --delta: %s", filepath.Base(target), firstDiff(got, img2))
		}
		if target == older && res.Written+res.Zeroed > 4<<20 {
			t.Errorf("older file: written %d zeroed %d, want at most 4 MiB", res.Written, res.Zeroed)
		}
	}
}
