package media

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"bty/gpt"
)

func TestParseGUID(t *testing.T) {
	// The EFI system partition type as it is stored on disk (UEFI spec 5.3.3).
	want := gpt.GUID{0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b}
	if guidESP != want {
		t.Errorf("MustParseGUID(C12A7328-F81F-11D2-BA4B-00A0C93EC93B) = % x, want % x", guidESP, want)
	}
	a, b := derivedGUID([]byte("seed"), "disk"), derivedGUID([]byte("seed"), "esp")
	if a == b || a != derivedGUID([]byte("seed"), "disk") {
		t.Errorf("derivedGUID is not a function of seed and label")
	}
	if a[7]>>4 != 4 || a[8]>>6 != 2 {
		t.Errorf("derivedGUID = % x: not a version 4, RFC 4122 GUID", a)
	}
}

func TestGPTRegions(t *testing.T) {
	const n = 8 << 11 // 8 MiB of sectors
	parts := []gpt.Partition{
		{Type: guidESP, ID: derivedGUID(nil, "1"), First: 2048, Last: 4095, Name: "EFI system partition"},
		{Type: guidBasicData, ID: derivedGUID(nil, "2"), First: 4096, Last: 14335, Name: "BTY_IMAGES"},
	}
	head, tail := gpt.Layout(sectorSize, n, derivedGUID(nil, "disk"), parts)
	if len(head) != 34*sectorSize || len(tail) != 33*sectorSize {
		t.Fatalf("gpt.Layout sizes = %d, %d, want %d, %d", len(head), len(tail), 34*sectorSize, 33*sectorSize)
	}
	check := func(name string, h []byte, my, alt, table uint64) {
		if string(h[:8]) != "EFI PART" {
			t.Fatalf("%s header: no signature", name)
		}
		crc := binary.LittleEndian.Uint32(h[16:])
		c := append([]byte{}, h[:92]...)
		binary.LittleEndian.PutUint32(c[16:], 0)
		if crc32.ChecksumIEEE(c) != crc {
			t.Errorf("%s header CRC is wrong", name)
		}
		for _, f := range []struct {
			off  int
			want uint64
		}{{24, my}, {32, alt}, {72, table}, {40, 34}, {48, n - 34}} {
			if got := binary.LittleEndian.Uint64(h[f.off:]); got != f.want {
				t.Errorf("%s header field at %d = %d, want %d", name, f.off, got, f.want)
			}
		}
	}
	check("primary", head[sectorSize:], 1, n-1, 2)
	check("backup", tail[32*sectorSize:], n-1, 1, n-33)
	if head[446+4] != 0xee || head[510] != 0x55 || head[511] != 0xaa {
		t.Errorf("no protective MBR")
	}

	needTool(t, "sgdisk")
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(n * sectorSize)
	f.WriteAt(head, 0)
	f.WriteAt(tail, (n-33)*sectorSize)
	f.Close()
	out, err := exec.Command("sgdisk", "-v", p).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("sgdisk -v: %v\n%s", err, out)
	}
	out, _ = exec.Command("sgdisk", "-p", p).CombinedOutput()
	for _, w := range []string{"EF00  EFI system partition", "0700  BTY_IMAGES", "2048            4095", "4096           14335"} {
		if !strings.Contains(string(out), w) {
			t.Errorf("sgdisk -p lacks %q:\n%s", w, out)
		}
	}
}
