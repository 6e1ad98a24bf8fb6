package media

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestFATShortName(t *testing.T) {
	for _, tc := range []struct {
		in    string
		raw   string
		flags byte
		ok    bool
	}{
		{"BOOTX64.EFI", "BOOTX64 EFI", 0, true},
		{"vmlinuz", "VMLINUZ    ", 0x08, true},
		{"initrd.img", "INITRD  IMG", 0x18, true},
		{"EFI", "EFI        ", 0, true},
		{"loader.conf", "", 0, false}, // extension of four
		{"Mixed.txt", "", 0, false},   // mixed case needs a long name
		{"a b", "", 0, false},
		{".hidden", "", 0, false},
	} {
		raw, flags, ok := fatShortName(tc.in)
		if ok != tc.ok || (ok && (string(raw[:]) != tc.raw || flags != tc.flags)) {
			t.Errorf("fatShortName(%q) = %q, %#x, %v, want %q, %#x, %v", tc.in, raw, flags, ok, tc.raw, tc.flags, tc.ok)
		}
	}
}

// TestWriteFAT32 writes a file system and has dosfstools check it and mtools
// read every file back.
func TestWriteFAT32(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 5000) // many clusters
	files := []fatFile{
		{"EFI/BOOT/BOOTX64.EFI", []byte("MZ loader")},
		{"loader/loader.conf", []byte("timeout 3\n")},
		{"loader/entries/bty.conf", []byte("title bty\n")},
		{"loader/entries/A Long Name.conf", []byte("second long name in one directory\n")},
		{"vmlinuz", big},
		{"empty", nil},
	}
	const n = 80 << 11 // 80 MiB
	p := filepath.Join(t.TempDir(), "esp.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(n * sectorSize)
	if err := writeFAT32(f, 0, n, 2048, "BTY_EFI", 0x12345678, files); err != nil {
		t.Fatalf("writeFAT32: %v", err)
	}
	f.Close()

	needTool(t, "fsck.vfat", "mtype")
	if out, err := exec.Command("fsck.vfat", "-n", p).CombinedOutput(); err != nil {
		t.Errorf("fsck.vfat -n: %v\n%s", err, out)
	}
	for _, ff := range files {
		cmd := exec.Command("mtype", "-i", p, "::/"+ff.path)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		got, err := cmd.Output()
		if err != nil {
			t.Errorf("mtype %s: %v", ff.path, err)
			continue
		}
		if !bytes.Equal(got, ff.data) {
			t.Errorf("mtype %s = %d bytes, want %d", ff.path, len(got), len(ff.data))
		}
	}
	out, _ := exec.Command("mdir", "-i", p, "::/loader/entries").CombinedOutput()
	for _, w := range []string{"bty.conf", "A Long Name.conf"} {
		if !strings.Contains(string(out), w) {
			t.Errorf("mdir lacks %q:\n%s", w, out)
		}
	}
}

func TestWriteFAT32TooSmall(t *testing.T) {
	if err := writeFAT32(discardAt{}, 0, 16<<11, 2048, "X", 1, nil); err == nil {
		t.Errorf("writeFAT32 on 16 MiB (too few clusters for FAT32) = nil, want an error")
	}
}

type discardAt struct{}

func (discardAt) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }
