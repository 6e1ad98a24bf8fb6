package catalog

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"bty/format"
)

func TestSniffFormat(t *testing.T) {
	mbr := make([]byte, 512)
	mbr[510], mbr[511] = 0x55, 0xaa
	gpt := make([]byte, 1024)
	copy(gpt[512:], "EFI PART")
	iso := make([]byte, sniffHead)
	copy(iso[32769:], "CD001")
	tests := []struct {
		name string
		head []byte
		want format.Format
	}{
		{"gzip", []byte{0x1f, 0x8b, 8, 0}, format.Gzip},
		{"xz", []byte{0xfd, '7', 'z', 'X', 'Z', 0, 0}, format.Xz},
		{"zstd", []byte{0x28, 0xb5, 0x2f, 0xfd, 1}, format.Zstd},
		{"bzip2", []byte("BZh91AY"), format.Bzip2},
		{"qcow2", []byte{'Q', 'F', 'I', 0xfb, 0, 0, 0, 3}, format.Qcow2},
		{"mbr", mbr, format.Raw},
		{"gpt", gpt, format.Raw},
		{"iso", iso, format.Raw},
		{"text", []byte("hello world\n"), ""},
		{"empty", nil, ""},
		{"xz magic cut short", []byte{0xfd, '7', 'z'}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sniffFormat(tt.head); got != tt.want {
				t.Errorf("sniffFormat(% x...) = %q, want %q", tt.head[:min(8, len(tt.head))], got, tt.want)
			}
		})
	}
}

func FuzzSniffFormat(f *testing.F) {
	f.Add([]byte{0x1f, 0x8b})
	f.Add([]byte("QFI\xfb"))
	f.Fuzz(func(t *testing.T, head []byte) {
		if got := sniffFormat(head); got != "" && format.Parse(string(got)) != got {
			t.Errorf("sniffFormat() = %q, not a known format", got)
		}
	})
}

func TestScanRoot(t *testing.T) {
	dir := t.TempDir()
	mbr := make([]byte, 4096)
	mbr[510], mbr[511] = 0x55, 0xaa
	xz := append([]byte{0xfd, '7', 'z', 'X', 'Z', 0}, bytes.Repeat([]byte{1}, 100)...)
	gz := []byte{0x1f, 0x8b, 8, 0, 0, 0}
	files := map[string][]byte{
		"debian.img.xz":        xz,
		"debian.img.xz.sha256": []byte(sumA + "  debian.img.xz\n"),
		"disk.img":             mbr,
		"blank.raw":            make([]byte, 1024), // no partition table: the suffix says raw
		"liar.img.gz":          xz,                 // the bytes win; the disagreement is noted
		"notes.txt":            []byte("not an image\n"),
		"unknown.bin.part":     gz[:1],
		".hidden.img.gz":       gz,
		"._debian.img.xz":      xz,
		"bad.img.gz":           gz,
		"bad.img.gz.sha256":    []byte("not a digest\n"),
		"meta.json":            []byte("{}"),
		"empty.img":            nil,
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(dir, "disk.img"), filepath.Join(dir, "link.img")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.img"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := ScanRoot(dir)
	if err != nil {
		t.Fatalf("ScanRoot() = %v", err)
	}
	p := func(n string) string { return filepath.Join(dir, n) }
	ref := func(n string) string { return hashString("file://" + p(n)) }
	want := []Entry{
		{Name: "bad.img.gz", Src: p("bad.img.gz"), Format: format.Gzip.Catalog(), Size: 6, Ref: ref("bad.img.gz"), From: dir, Note: "bad.img.gz.sha256 holds no sha256: fix or remove it"},
		{Name: "blank.raw", Src: p("blank.raw"), Format: format.Raw.Catalog(), Size: 1024, Ref: ref("blank.raw"), From: dir},
		{Name: "debian.img.xz", Src: p("debian.img.xz"), SHA256: sumA, Format: format.Xz.Catalog(), Size: 106, Ref: ref("debian.img.xz"), From: dir},
		{Name: "disk.img", Src: p("disk.img"), Format: format.Raw.Catalog(), Size: 4096, Ref: ref("disk.img"), From: dir},
		{Name: "liar.img.gz", Src: p("liar.img.gz"), Format: format.Xz.Catalog(), Size: 106, Ref: ref("liar.img.gz"), From: dir, Note: "the name says gzip but the bytes are xz"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ScanRoot() differs (-want +got):\n%s", diff)
	}

	if _, err := ScanRoot(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ScanRoot(missing) = %v, want fs.ErrNotExist", err)
	}
}

func TestDefaultImageRoot(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	if got := DefaultImageRoot(getenv); got != DefaultImageRootDir {
		t.Errorf("DefaultImageRoot() = %q, want %q", got, DefaultImageRootDir)
	}
	env["BTY_IMAGE_ROOT"] = "/mnt/images"
	if got := DefaultImageRoot(getenv); got != "/mnt/images" {
		t.Errorf("DefaultImageRoot(BTY_IMAGE_ROOT=/mnt/images) = %q, want /mnt/images", got)
	}
}

func TestMerge(t *testing.T) {
	root := []Entry{{Name: "a", Ref: "1", From: "root"}}
	c1 := []Entry{{Name: "b", Ref: "2", From: "c1"}, {Name: "a-again", Ref: "1", From: "c1"}}
	c2 := []Entry{{Name: "b", Ref: "3", From: "c2"}, {Name: "c", Ref: "2", From: "c2"}}
	got := Merge(root, c1, c2)
	want := []Entry{{Name: "a", Ref: "1", From: "root"}, {Name: "b", Ref: "2", From: "c1"}, {Name: "b", Ref: "3", From: "c2"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Merge() differs (-want +got):\n%s", diff)
	}
	if e, ok := Find(got, "b"); !ok || e.From != "c1" {
		t.Errorf("Find(b) = %+v, %v, want the row from c1", e, ok)
	}
}
