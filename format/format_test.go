package format

import "testing"

func TestMagic(t *testing.T) {
	for _, tc := range []struct {
		name string
		head []byte
		want Format
	}{
		{"gzip", []byte("\x1f\x8b\x08\x00"), Gzip},
		{"xz", []byte("\xfd7zXZ\x00\x00\x04"), Xz},
		{"zstd", []byte("\x28\xb5\x2f\xfd\x04"), Zstd},
		{"zstd skippable frame first", []byte("\x50\x2a\x4d\x18\x04\x00\x00\x00"), Zstd},
		{"bzip2", []byte("BZh91AY&SY"), Bzip2},
		{"BZh without level", []byte("BZhx"), ""},
		{"qcow2", []byte("QFI\xfb\x00\x00\x00\x03"), Qcow2},
		{"mbr", append(make([]byte, 510), 0x55, 0xaa), ""},
		{"empty", nil, ""},
	} {
		if got := Magic(tc.head); got != tc.want {
			t.Errorf("Magic(%s) = %q, want %q", tc.name, got, tc.want)
		}
		want := tc.want
		if want == "" {
			want = Raw
		}
		if got := Sniff(tc.head); got != want {
			t.Errorf("Sniff(%s) = %q, want %q", tc.name, got, want)
		}
	}
}

func TestFromName(t *testing.T) {
	for _, tc := range []struct {
		name string
		want Format
	}{
		{"debian-13.img.xz", Xz},
		{"DEBIAN.IMG.GZ", Gzip},
		{"a.img.zst", Zstd},
		{"a.zstd", Zstd},
		{"a.img.bz2", Bzip2},
		{"vm.qcow2", Qcow2},
		{"old.qcow", Qcow2},
		{"disk.img", Raw},
		{"cd.iso", Raw},
		{"https://host/path/a.img.xz?token=abc.gz", Xz},
		{"img.xz", Xz}, // catalog format values
		{"img", Raw},
		{"qcow2", Qcow2},
		{"gz", Gzip}, // a bare suffix
		{"xz", Xz},   // a name
		{"README", ""},
		{"a.tar", ""},
	} {
		if got := FromName(tc.name); got != tc.want {
			t.Errorf("FromName(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestCatalogValues: every value of the catalog's format field (WIRE section
// 1) reads as one format and is what that format writes back.
func TestCatalogValues(t *testing.T) {
	want := map[string]Format{"img": Raw, "img.gz": Gzip, "img.xz": Xz, "img.zst": Zstd, "img.bz2": Bzip2, "qcow2": Qcow2}
	for v, f := range want {
		if got := Parse(v); got != f {
			t.Errorf("Parse(%q) = %q, want %q", v, got, f)
		}
		if got := f.Catalog(); got != v {
			t.Errorf("%s.Catalog() = %q, want %q", f, got, v)
		}
	}
	if len(All) != len(want) {
		t.Errorf("All has %d formats, the catalog %d", len(All), len(want))
	}
	for _, f := range All {
		if Parse(string(f)) != f || Parse(" "+string(f)+" ") != f {
			t.Errorf("Parse(%q) = %q, want it back", f, Parse(string(f)))
		}
	}
	if got := Parse("tar"); got != "" {
		t.Errorf(`Parse("tar") = %q, want ""`, got)
	}
}
