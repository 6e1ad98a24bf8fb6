package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"bty/disks"

	"github.com/google/go-cmp/cmp"
)

// TestDisksJSONFields runs bty disks --json --all on this machine and checks
// every disk against InventoryDisk of docs/server-protocol.md (plus size_bytes).
func TestDisksJSONFields(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"disks", "--json", "--all"}, &out, &errb); code != 0 {
		t.Fatalf("bty disks --json --all = exit %d, want 0; stderr:\n%s", code, errb.String())
	}
	var doc struct {
		Disks []map[string]any `json:"disks"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("bty disks --json --all: %v\n%s", err, out.String())
	}
	if len(doc.Disks) == 0 {
		t.Logf("no disks on this machine; checking the fixture instead")
		doc.Disks = fixtureJSON(t, "laptop", true)
	}
	for _, d := range doc.Disks {
		for _, f := range []string{"path", "size", "vendor", "model", "serial", "tran"} {
			if _, ok := d[f].(string); !ok {
				t.Errorf("disk %v: field %q = %#v, want a string", d["path"], f, d[f])
			}
		}
		for _, f := range []string{"removable", "readonly"} {
			if _, ok := d[f].(bool); !ok {
				t.Errorf("disk %v: field %q = %#v, want a bool", d["path"], f, d[f])
			}
		}
		if _, ok := d["size_bytes"].(float64); !ok {
			t.Errorf("disk %v: field size_bytes = %#v, want a number", d["path"], d["size_bytes"])
		}
		v, ok := d["verdict"].(map[string]any)
		if !ok || v["level"] == nil || v["reasons"] == nil {
			t.Errorf("disk %v: verdict = %#v, want level and reasons", d["path"], d["verdict"])
		}
	}
}

func fixtureRoots(name string) disks.Roots {
	root := filepath.Join("disks", "testdata", name)
	return disks.Roots{
		Sys:  filepath.Join(root, "sys"),
		Proc: filepath.Join(root, "proc"),
		Dev:  filepath.Join(root, "dev"),
		Run:  filepath.Join(root, "run"),
	}
}

func fixtureJSON(t *testing.T, name string, all bool) []map[string]any {
	t.Helper()
	var out bytes.Buffer
	if err := showDisks(env{stdout: &out, stderr: &out}, fixtureRoots(name), true, all); err != nil {
		t.Fatalf("showDisks(%s, json) = %v", name, err)
	}
	var doc struct {
		Disks []map[string]any `json:"disks"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("showDisks(%s, json): %v\n%s", name, err, out.String())
	}
	return doc.Disks
}

func TestDisksFilter(t *testing.T) {
	tests := []struct {
		fixture string
		all     bool
		want    []string
	}{
		{"laptop", false, []string{"/dev/sda"}},
		{"laptop", true, []string{"/dev/loop0", "/dev/nvme0n1", "/dev/sda", "/dev/sdb", "/dev/sdc", "/dev/sdd"}},
		{"sbc", false, []string{"/dev/mmcblk1"}},
		{"live", false, []string{"/dev/sda"}},
	}
	for _, tt := range tests {
		var got []string
		for _, d := range fixtureJSON(t, tt.fixture, tt.all) {
			got = append(got, d["path"].(string))
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("showDisks(%s, all=%v) paths mismatch (-want +got):\n%s", tt.fixture, tt.all, diff)
		}
	}
}

func TestDisksTable(t *testing.T) {
	var out bytes.Buffer
	if err := showDisks(env{stdout: &out, stderr: &out}, fixtureRoots("laptop"), false, true); err != nil {
		t.Fatalf("showDisks(laptop, table) = %v", err)
	}
	text := out.String()
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if len(l) > 80 {
			t.Errorf("showDisks(laptop) line is %d columns, want at most 80: %q", len(l), l)
		}
	}
	for _, want := range []string{
		"/dev/sda      931.5G  sata  no   WDC WD10EZEX-08W  WD-WCC6Y1234567       confirm\n",
		"    - holds the running system (/ is mounted from nvme0n1p2)\n",
		"    - partition sdc1 is held by dm-0 (dm-crypt cryptdata)\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("showDisks(laptop) = \n%s\nwant a line %q", text, want)
		}
	}

	out.Reset()
	if err := showDisks(env{stdout: &out, stderr: &out}, fixtureRoots("laptop"), false, false); err != nil {
		t.Fatalf("showDisks(laptop, table) = %v", err)
	}
	if want := "5 more hidden (refused, or loop devices); bty disks --all shows them and why\n"; !strings.HasSuffix(out.String(), want) {
		t.Errorf("showDisks(laptop) = \n%s\nwant it to end with %q", out.String(), want)
	}
}

func TestDisksUsage(t *testing.T) {
	for _, args := range [][]string{{"disks", "--bogus"}, {"disks", "sda"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != exitUsage {
			t.Errorf("run(%q) = exit %d, want %d; stderr:\n%s", args, code, exitUsage, errb.String())
		}
	}
}

func TestDisksExitCodes(t *testing.T) {
	r := fixtureRoots("vm")
	tests := []struct {
		spec string
		want int
	}{
		{"/dev/vda", exitRefused},       // running system
		{"serial:nope", exitRefused},    // serial not found
		{"serial:CLONE-1", exitRefused}, // two disks have it
		{"/dev/vdz", exitRefused},       // no such disk
		{"vdb", exitUsage},              // not a DISK form
		{"/dev/vdb", exitOK},            // confirm, named exactly
	}
	for _, tt := range tests {
		_, _, err := disks.ResolveTarget(r, tt.spec, disks.Check{})
		if got := exitCode(err); got != tt.want {
			t.Errorf("exitCode(ResolveTarget(%q) = %v) = %d, want %d", tt.spec, err, got, tt.want)
		}
	}
}
