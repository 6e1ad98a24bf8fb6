package wire

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestNormalizeMAC(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"AA:BB:CC:DD:EE:FF", "aa:bb:cc:dd:ee:ff"},
		{"aa-bb-cc-dd-ee-0f", "aa:bb:cc:dd:ee:0f"},
		{" 52-54-00-12-34-56\n", "52:54:00:12:34:56"},
	} {
		if got, err := NormalizeMAC(tc.in); err != nil || got != tc.want {
			t.Errorf("NormalizeMAC(%q) = %q, %v, want %q", tc.in, got, err, tc.want)
		}
	}
	// bty-web refuses these too: no separators, dots, other lengths, non-hex.
	for _, bad := range []string{"", "aa:bb", "zz:bb:cc:dd:ee:ff", "00:11:22:33:44:55:66:77", "aabbccddeeff", "aabb.ccdd.eeff", "a:bb:cc:dd:ee:ff0", "aa:bb:cc:dd:ee:f"} {
		if got, err := NormalizeMAC(bad); err == nil {
			t.Errorf("NormalizeMAC(%q) = %q, nil error, want one", bad, got)
		}
	}
}

func TestParsePlan(t *testing.T) {
	sha := strings.Repeat("a", 64)
	for _, tc := range []struct {
		in      string
		want    Plan
		wantErr string
	}{
		{`{"mode":"flash","image":"http://h/i.img.xz","target_disk_serial":"S1","name":"i","format":"img.xz","disk_image_sha":"` + strings.ToUpper(sha) + `","extra":1}`,
			Plan{Mode: ModeFlash, Image: "http://h/i.img.xz", TargetDiskSerial: "S1", Name: "i", Format: "img.xz", DiskImageSHA: sha}, ""},
		{`{"mode":"flash","image":"http://h/i.img","target_disk_serial":"S1","delta":true,"block_index":"http://h/blocks/x.index","block_index_digest":"SHA256:` + strings.ToUpper(sha) + `"}`, Plan{}, "not sha256:<64 hex digits>"},
		{`{"mode":"flash","image":"http://h/i.img","target_disk_serial":"S1","delta":true,"block_index":"http://h/blocks/x.index","block_index_digest":"sha256:` + strings.ToUpper(sha) + `"}`,
			Plan{Mode: ModeFlash, Image: "http://h/i.img", TargetDiskSerial: "S1", Delta: true, BlockIndex: "http://h/blocks/x.index", BlockIndexDigest: "sha256:" + sha}, ""},
		{`{"mode":"flash","image":"http://h/i.img","target_disk_serial":"S1","delta":true}`, Plan{Mode: ModeFlash, Image: "http://h/i.img", TargetDiskSerial: "S1", Delta: true}, ""},
		{`{"mode":"flash","image":"http://h/i.img","target_disk_serial":"S1","block_index":"http://h/x.index"}`, Plan{}, "block_index and block_index_digest go together"},
		{`{"mode":"interactive","catalog":"http://h/catalog.toml"}`, Plan{Mode: ModeInteractive, Catalog: "http://h/catalog.toml"}, ""},
		{`{"mode":"inventory"}`, Plan{Mode: ModeInventory}, ""},
		{`{"mode":"exit"}`, Plan{Mode: ModeExit}, ""},
		{`{"mode":"flash","image":"http://h/i"}`, Plan{}, "missing target_disk_serial"},
		{`{"mode":"flash"}`, Plan{}, "missing image and target_disk_serial"},
		{`{"mode":"flash","image":"x","target_disk_serial":"S","disk_image_sha":"abc"}`, Plan{}, "not 64 hex"},
		{`{"mode":"interactive"}`, Plan{}, "missing catalog"},
		{`{"mode":"dance"}`, Plan{}, `unknown mode "dance"`},
		{`{}`, Plan{}, "no mode"},
		{`{"mode":`, Plan{}, "not valid JSON"},
	} {
		got, err := ParsePlan([]byte(tc.in))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParsePlan(%s) error = %v, want one containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParsePlan(%s) = %+v, %v, want %+v", tc.in, got, err, tc.want)
		}
	}
}

// TestStrictBodies: the server decodes machine bodies strictly at the top
// level (bty-web's extra=forbid) but ignores unknown fields of a disk.
func TestStrictBodies(t *testing.T) {
	dec := func(s string, v any) error {
		d := json.NewDecoder(strings.NewReader(s))
		d.DisallowUnknownFields()
		return d.Decode(v)
	}
	var inv Inventory
	if err := dec(`{"disks":[{"path":"/dev/sda","serial":null,"future":1}],"lshw":{"id":"x"}}`, &inv); err != nil || inv.Disks[0].Path != "/dev/sda" {
		t.Errorf("inventory with an unknown disk field = %+v, %v, want it taken", inv, err)
	}
	if err := dec(`{"disks":[],"extra":1}`, &inv); err == nil {
		t.Errorf("inventory with an unknown top-level field: nil error, want one")
	}
	for _, tc := range []struct {
		body string
		ok   bool
	}{
		{`{"status":"done"}`, true},
		{`{"status":"failed","reason":"x"}`, true},
		{`{"status":"done","plan_id":3,"sha256":"` + strings.Repeat("A", 64) + `"}`, true},
		{`{"status":"ok"}`, false},
		{`{"status":"failed","reason":"` + strings.Repeat("é", 501) + `"}`, false},
		{`{"status":"done","sha256":"abc"}`, false},
		{`{"status":"failed","class":"bad"}`, false},
	} {
		var s Status
		err := dec(tc.body, &s)
		if err == nil {
			err = s.Validate()
		}
		if (err == nil) != tc.ok {
			t.Errorf("status %s: error %v, want ok=%v", tc.body, err, tc.ok)
		}
	}
	many := Inventory{Disks: make([]InventoryDisk, MaxDisks+1)}
	for i := range many.Disks {
		many.Disks[i].Path = "/dev/x"
	}
	if err := many.Validate(); err == nil {
		t.Errorf("an inventory of %d disks: nil error, want one", len(many.Disks))
	}
}

func TestMachineUpsert(t *testing.T) {
	ref := strings.Repeat("AB", 32)
	u := MachineUpsert{BtyImageRef: &ref, Labels: []string{"rack 2", "gpu", "gpu"}, SanbootDrive: new(string)}
	if err := u.Validate(); err != nil {
		t.Fatal(err)
	}
	if *u.BtyImageRef != strings.ToLower(ref) || u.BootMode != BootExit || len(u.Labels) != 2 || u.Labels[0] != "gpu" || u.SanbootDrive != nil {
		t.Errorf("normalised upsert = %+v", u)
	}
	for _, bad := range []MachineUpsert{
		{BootMode: "auto"},
		{Labels: []string{"-x"}},
		{SanbootDrive: ptr("80")},
		{Power: "ipmi"},
		{Power: "cmd:"},
		{Power: "wol:nohost"},
		{BtyImageRef: ptr("abc")},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", bad)
		}
	}
	for _, ok := range []string{"", "wol", "wol:127.0.0.1:9999", "cmd:ipmitool -H bmc chassis power cycle"} {
		if err := ValidPower(ok); err != nil {
			t.Errorf("ValidPower(%q) = %v", ok, err)
		}
	}
}

func ptr(s string) *string { return &s }
