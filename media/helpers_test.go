package media

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"unicode/utf16"

	"github.com/ulikunitz/xz"

	"bty/internal/need"
)

// needTool skips a test when a host command it checks with is missing,
// naming the Debian package.
func needTool(t *testing.T, names ...string) {
	t.Helper()
	need.Tools(t, names...)
}

// needBusybox skips unless Debian's static busybox is there; tests also use it
// as the "bty" binary, any static executable will do.
func needBusybox(t *testing.T) {
	t.Helper()
	if err := checkBusybox(DefaultBusybox); err != nil {
		t.Skipf("%v", err)
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakeKernel writes a file with an x86 boot header that names version.
func fakeKernel(t *testing.T, dir, version string) string {
	t.Helper()
	b := make([]byte, 0x1000)
	copy(b[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(b[0x20e:], 0x400-0x200)
	copy(b[0x400:], version+" (test@example) #1 SMP\x00")
	p := filepath.Join(dir, "vmlinuz-"+version)
	writeFile(t, p, b)
	return p
}

// fakeModules writes a module tree as depmod leaves it: a.ko needs b (xz
// compressed) and c; usb-storage.ko needs c; builtin_one is built in.
func fakeModules(t *testing.T, root, version string) string {
	t.Helper()
	dir := filepath.Join(root, "lib", "modules", version)
	var xzb bytes.Buffer
	zw, err := xz.NewWriter(&xzb)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write([]byte("module b"))
	zw.Close()
	writeFile(t, filepath.Join(dir, "kernel/a.ko"), []byte("module a"))
	writeFile(t, filepath.Join(dir, "kernel/sub/b.ko.xz"), xzb.Bytes())
	writeFile(t, filepath.Join(dir, "kernel/c.ko"), []byte("module c"))
	writeFile(t, filepath.Join(dir, "kernel/usb-storage.ko"), []byte("module usb-storage"))
	writeFile(t, filepath.Join(dir, "modules.dep"), []byte(
		"kernel/a.ko: kernel/sub/b.ko.xz kernel/c.ko\nkernel/sub/b.ko.xz: kernel/c.ko\nkernel/c.ko:\nkernel/usb-storage.ko: kernel/c.ko\n"))
	writeFile(t, filepath.Join(dir, "modules.builtin"), []byte("kernel/builtin-one.ko\n"))
	return dir
}

// cpioRec is one entry of a newc archive.
type cpioRec struct {
	Name  string
	Mode  uint32
	Data  string
	Rdev  [2]uint32
	Ino   uint32
	MTime uint32
}

// readNewc parses a newc archive up to its trailer, as the kernel does.
func readNewc(b []byte) ([]cpioRec, error) {
	var out []cpioRec
	off := 0
	align := func() { off = (off + 3) &^ 3 }
	for {
		if off+110 > len(b) || string(b[off:off+6]) != "070701" {
			return nil, fmt.Errorf("no newc header at %d", off)
		}
		var f [13]uint32
		for i := range f {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				return nil, err
			}
			f[i] = uint32(v)
		}
		off += 110
		name := string(b[off : off+int(f[11])-1])
		off += int(f[11])
		align()
		data := string(b[off : off+int(f[6])])
		off += int(f[6])
		align()
		if name == "TRAILER!!!" {
			return out, nil
		}
		out = append(out, cpioRec{Name: name, Mode: f[1], Data: data, Rdev: [2]uint32{f[9], f[10]}, Ino: f[0], MTime: f[5]})
	}
}

// exfatReadAll reads the root directory of the exFAT volume at offset base of
// the file at path, following the spec rather than this package's writer:
// it returns the label and each file's contents.
func exfatReadAll(t *testing.T, path string, base int64) (string, map[string][]byte) {
	t.Helper()
	img, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v := img[base:]
	if string(v[3:11]) != "EXFAT   " {
		t.Fatalf("no exFAT boot sector at %d", base)
	}
	sectorShift, clusterShift := v[108], v[109]
	fatOff := int64(binary.LittleEndian.Uint32(v[80:])) << sectorShift
	heap := int64(binary.LittleEndian.Uint32(v[88:])) << sectorShift
	rootCluster := binary.LittleEndian.Uint32(v[96:])
	cb := int64(1) << (sectorShift + clusterShift)
	chain := func(first uint32, n int64) []byte {
		var out []byte
		for c := first; c >= 2 && c < 0xfffffff7 && (n < 0 || int64(len(out)) < n); c = binary.LittleEndian.Uint32(v[fatOff+4*int64(c):]) {
			out = append(out, v[heap+int64(c-2)*cb:heap+int64(c-1)*cb]...)
		}
		if n >= 0 {
			out = out[:n]
		}
		return out
	}
	dir := chain(rootCluster, -1)
	label := ""
	files := map[string][]byte{}
	for i := 0; i+32 <= len(dir) && dir[i] != 0; i += 32 {
		e := dir[i : i+32]
		switch e[0] {
		case 0x83:
			u := make([]uint16, e[1])
			for j := range u {
				u[j] = binary.LittleEndian.Uint16(e[2+2*j:])
			}
			label = string(utf16.Decode(u))
		case 0x85:
			s := dir[i+32 : i+64]
			nameLen := int(s[3])
			var u []uint16
			for j := 0; len(u) < nameLen; j++ {
				ne := dir[i+64+32*j:]
				for k := 0; k < 15 && len(u) < nameLen; k++ {
					u = append(u, binary.LittleEndian.Uint16(ne[2+2*k:]))
				}
			}
			size := int64(binary.LittleEndian.Uint64(s[24:]))
			files[string(utf16.Decode(u))] = chain(binary.LittleEndian.Uint32(s[20:]), size)
			i += 32 * int(e[1])
		}
	}
	return label, files
}
