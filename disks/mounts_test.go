package disks

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseMountinfo(t *testing.T) {
	tests := []struct {
		name, in string
		want     []mountEntry
		wantErr  bool
	}{
		{
			name: "optional fields",
			in:   "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue\n",
			want: []mountEntry{{dev: "98:0", point: "/mnt2", fstype: "ext3", source: "/dev/root"}},
		},
		{
			name: "no optional fields",
			in:   "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n",
			want: []mountEntry{{dev: "254:0", point: "/", fstype: "ext4", source: "/dev/vda"}},
		},
		{
			name: "escaped space and backslash",
			in:   `30 22 0:46 / /home/u/My\040Files\134x rw - fuse.sshfs u@nas:/my\040files rw` + "\n",
			want: []mountEntry{{dev: "0:46", point: `/home/u/My Files\x`, fstype: "fuse.sshfs", source: "u@nas:/my files"}},
		},
		{
			name: "blank lines",
			in:   "\n1 1 8:1 / / rw - ext4 /dev/sda1 rw\n\n",
			want: []mountEntry{{dev: "8:1", point: "/", fstype: "ext4", source: "/dev/sda1"}},
		},
		{name: "no separator", in: "1 1 8:1 / / rw ext4 /dev/sda1 rw\n", wantErr: true},
		{name: "short", in: "1 1 8:1 /\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMountinfo(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseMountinfo(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(mountEntry{})); diff != "" {
				t.Errorf("parseMountinfo(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestParseSwaps(t *testing.T) {
	in := "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n" +
		"/dev/nvme0n1p3                          partition\t16501756\t0\t\t-2\n" +
		"/var/swap\\040file                       file\t\t1048572\t\t0\t\t-3\n"
	got, err := parseSwaps(strings.NewReader(in))
	if err != nil {
		t.Fatalf("parseSwaps(%q) = %v", in, err)
	}
	want := []swapEntry{{path: "/dev/nvme0n1p3"}, {path: "/var/swap file", file: true}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(swapEntry{})); diff != "" {
		t.Errorf("parseSwaps(%q) mismatch (-want +got):\n%s", in, diff)
	}
}

func TestUnescapeOctal(t *testing.T) {
	tests := map[string]string{
		`plain`:         "plain",
		`a\040b`:        "a b",
		`tab\011nl\012`: "tab\tnl\n",
		`back\134`:      `back\`,
		`short\04`:      `short\04`,
		`not\999octal`:  `not\999octal`,
	}
	for in, want := range tests {
		if got := unescapeOctal(in); got != want {
			t.Errorf("unescapeOctal(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHolding(t *testing.T) {
	ms := []mountEntry{
		{point: "/", name: "sda2"},
		{point: "/mnt", name: "sdb1"},
		{point: "/mnt/data", name: "sdc1"},
		{point: "/mnt", name: "sdd1"}, // mounted over the first /mnt
		{point: "/run", name: ""},
	}
	tests := []struct {
		path, want string
	}{
		{"/etc/passwd", "sda2"},
		{"/mnt/img.raw", "sdd1"},
		{"/mnt", "sdd1"},
		{"/mnt/data/img.raw", "sdc1"},
		{"/mntx/img.raw", "sda2"},
		{"/run/bty/img.raw", ""},
	}
	for _, tt := range tests {
		m, ok := holding(ms, tt.path)
		if !ok || m.name != tt.want {
			t.Errorf("holding(%s) = %q, %v, want %q", tt.path, m.name, ok, tt.want)
		}
	}
	if m, ok := holding(ms, "relative/path"); ok {
		t.Errorf("holding(relative/path) = %q, true, want no mount", m.name)
	}
}
