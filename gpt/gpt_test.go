package gpt

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMustParseGUID(t *testing.T) {
	// The EFI system partition type as it is stored on disk (UEFI 2.10, 5.3.3).
	want := GUID{0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b}
	if got := MustParseGUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B"); got != want {
		t.Errorf("MustParseGUID(ESP) = % x, want % x", got, want)
	}
	for _, bad := range []string{"C12A7328F81F11D2BA4B00A0C93EC93B", "C12A7328-F81F-11D2-BA4B-00A0C93EC93", "X12A7328-F81F-11D2-BA4B-00A0C93EC93B"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("MustParseGUID(%q) did not panic", bad)
				}
			}()
			MustParseGUID(bad)
		}()
	}
}

// TestLayout: both headers of a laid-out disk parse back to what was laid
// out, point at each other and at their entry arrays, whose CRC they hold;
// a changed byte in a header fails its CRC.
func TestLayout(t *testing.T) {
	const lbs, n = 512, 8 << 11
	disk := MustParseGUID("B7D1E5A0-0D3C-4C55-9A3E-62C0BDE30000")
	parts := []Partition{{Type: MustParseGUID("0FC63DAF-8483-4772-8E79-3D69D8477DE4"), First: 2048, Last: n - 34, Name: "bty"}}
	head, tail := Layout(lbs, n, disk, parts)
	if len(head) != 34*lbs || len(tail) != 33*lbs {
		t.Fatalf("Layout sizes = %d, %d, want %d, %d", len(head), len(tail), 34*lbs, 33*lbs)
	}
	array := EntryArray(parts)
	want := Header{Revision: Revision, Size: HeaderSize, MyLBA: 1, AlternateLBA: n - 1, FirstUsableLBA: 34, LastUsableLBA: n - 34,
		DiskGUID: disk, EntriesLBA: 2, NumEntries: Entries, EntrySize: EntrySize, EntriesCRC: ArrayCRC(array)}
	primary, err := ParseHeader(head[lbs : 2*lbs])
	if err != nil {
		t.Fatalf("ParseHeader(primary) = %v", err)
	}
	if diff := cmp.Diff(want, primary); diff != "" {
		t.Errorf("primary header (-want +got):\n%s", diff)
	}
	backup, err := ParseHeader(tail[32*lbs:])
	if err != nil {
		t.Fatalf("ParseHeader(backup) = %v", err)
	}
	want.MyLBA, want.AlternateLBA, want.EntriesLBA = n-1, 1, n-33
	if diff := cmp.Diff(want, backup); diff != "" {
		t.Errorf("backup header (-want +got):\n%s", diff)
	}
	if string(head[2*lbs:]) != string(array) || string(tail[:32*lbs]) != string(array) {
		t.Errorf("the entry arrays differ from EntryArray(parts)")
	}
	if head[446+4] != 0xee || head[510] != 0x55 || head[511] != 0xaa {
		t.Errorf("no protective MBR")
	}
	head[lbs+40] ^= 1
	if _, err := ParseHeader(head[lbs : 2*lbs]); !errors.Is(err, ErrHeader) {
		t.Errorf("ParseHeader(a changed byte) = %v, want ErrHeader", err)
	}
}

func TestResizeProtectiveMBR(t *testing.T) {
	b := make([]byte, 512)
	if ResizeProtectiveMBR(b, 100) {
		t.Errorf("ResizeProtectiveMBR(zeros) = true, want false")
	}
	ProtectiveMBR(b, 100)
	if !ResizeProtectiveMBR(b, 1<<40) || le.Uint32(b[446+12:]) != 0xffffffff {
		t.Errorf("ResizeProtectiveMBR(2^40) size field = %#x, want 0xffffffff", le.Uint32(b[446+12:]))
	}
}
