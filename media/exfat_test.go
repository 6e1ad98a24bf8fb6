package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func memFile(name string, data []byte) exfatFile {
	return exfatFile{name: name, size: int64(len(data)), open: func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}}
}

func TestWriteExFAT(t *testing.T) {
	big := make([]byte, 3<<20+17) // zeros in the middle: left as a hole
	copy(big, "head")
	copy(big[len(big)-4:], "tail")
	files := map[string][]byte{
		"debian-13.img.xz":        big,
		"debian-13.img.xz.sha256": []byte(strings.Repeat("ab", 32) + "  debian-13.img.xz\n"),
		"empty.img":               nil,
		"Grüße aus Köln, ein recht langer Name.qcow2": []byte("qcow2-ish"), // three name entries
		"catalog.toml": []byte("version = 1\n"),
	}
	var in []exfatFile
	for name, data := range files {
		in = append(in, memFile(name, data))
	}
	// The smallest volume (4 KiB clusters) and one with 32 KiB clusters.
	n := exfatSizeFor(in, 1<<20)
	sparse := checkExFAT(t, n, in, files, false)
	checkExFAT(t, 300<<11, in, files, false)
	// Written densely over old data, as on a disk (only the region before
	// the cluster heap is zeroed first), it holds the same bytes: the old
	// data shows only in the free clusters at the end, not in the slack of
	// a file's last cluster.
	dense := checkExFAT(t, n, in, files, true)
	a, b := readAll(t, sparse), readAll(t, dense)
	k := 0
	for k < len(a) && a[k] == b[k] {
		k++
	}
	if !isZero(a[k:]) || bytes.Count(b[k:], []byte{0xa5}) != len(b)-k {
		t.Errorf("written densely over old data, the volume differs from the sparse one at byte %d, before its free clusters", k)
	}
}

func readAll(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkExFAT writes the files on a volume of n sectors, checks it, and
// returns its path.
func checkExFAT(t *testing.T, n uint64, in []exfatFile, files map[string][]byte, dense bool) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "images.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(int64(n) * sectorSize)
	if dense {
		old := bytes.Repeat([]byte{0xa5}, int(n)*sectorSize)
		l, err := newExfatLayout(n)
		if err != nil {
			t.Fatal(err)
		}
		clear(old[:int64(l.heapOffset)*sectorSize])
		f.WriteAt(old, 0)
	}
	if err := writeExFAT(f, 0, n, 4096, "BTY_IMAGES", 0xcafe, in, dense); err != nil {
		t.Fatalf("writeExFAT: %v", err)
	}
	f.Close()

	label, got := exfatReadAll(t, p, 0)
	if label != "BTY_IMAGES" {
		t.Errorf("label = %q, want BTY_IMAGES", label)
	}
	for name, data := range files {
		if g, ok := got[name]; !ok || !bytes.Equal(g, data) {
			t.Errorf("file %q: read %d bytes (present %v), want %d", name, len(g), ok, len(data))
		}
	}
	if len(got) != len(files) {
		t.Errorf("%d files on the volume, want %d", len(got), len(files))
	}
	needTool(t, "fsck.exfat")
	if out, err := exec.Command("fsck.exfat", "-n", p).CombinedOutput(); err != nil {
		t.Errorf("fsck.exfat -n: %v\n%s", err, out)
	}
	return p
}

func TestWriteExFATRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []exfatFile
		n     uint64
	}{
		{"names differing in case", []exfatFile{memFile("a.img", nil), memFile("A.IMG", nil)}, 64 << 11},
		{"a colon", []exfatFile{memFile("a:b.img", nil)}, 64 << 11},
		{"too small", []exfatFile{memFile("a.img", make([]byte, 70<<20))}, 64 << 11},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := writeExFAT(discardAt{}, 0, tc.n, 0, "X", 1, tc.files, false); !errors.Is(err, ErrInput) {
				t.Errorf("writeExFAT = %v, want ErrInput", err)
			}
		})
	}
}

// TestUpcaseTable expands the compressed table as a reader does.
func TestUpcaseTable(t *testing.T) {
	b := upcaseTable()
	m := make([]uint16, 0x10000)
	idx := 0
	for i := 0; i+1 < len(b) && idx <= 0xffff; i += 2 {
		v := binary.LittleEndian.Uint16(b[i:])
		if v == 0xffff && i+3 < len(b) {
			run := int(binary.LittleEndian.Uint16(b[i+2:]))
			for range run {
				m[idx] = uint16(idx)
				idx++
			}
			i += 2
			continue
		}
		m[idx] = v
		idx++
	}
	if idx != 0x10000 {
		t.Fatalf("the table covers %d characters, want 65536", idx)
	}
	for _, c := range [][2]uint16{{'a', 'A'}, {'z', 'Z'}, {'A', 'A'}, {'0', '0'}, {0xe9, 0xc9}, {0x3b1, 0x391}, {0xd800, 0xd800}} {
		if m[c[0]] != c[1] {
			t.Errorf("upcase(%#x) = %#x, want %#x", c[0], m[c[0]], c[1])
		}
	}
	if len(b) > 8000 {
		t.Errorf("compressed table is %d bytes; identity runs are not compressed", len(b))
	}
}
