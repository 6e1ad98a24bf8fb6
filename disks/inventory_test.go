package disks

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestHumanSize(t *testing.T) {
	// Expected values are what lsblk prints for these sizes.
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0B"},
		{512, "512B"},
		{1023, "1023B"},
		{1024, "1K"},
		{1536, "1.5K"},
		{4194304, "4M"},
		{1073741824, "1G"},
		{8053063680, "7.5G"},
		{15376318464, "14.3G"},
		{500107862016, "465.8G"},
		{536870912000, "500G"},
		{1000204886016, "931.5G"},
		{1099511627776, "1T"},
		{2000398934016, "1.8T"},
		{1073741823, "1024M"}, // 1023.99...M rounds up to 1024.0, as lsblk does
		{1<<62 + 1<<61, "6E"},
	}
	for _, tt := range tests {
		if got := HumanSize(tt.n); got != tt.want {
			t.Errorf("HumanSize(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestInventory(t *testing.T) {
	ds, err := List(fixture("laptop"))
	if err != nil {
		t.Fatalf("List(laptop) = %v", err)
	}
	got := Inventory(ds)
	want := []InventoryDisk{
		{Path: "/dev/loop0", Size: "10G", Tran: "loop", SizeBytes: 10737418240},
		{Path: "/dev/nvme0n1", Size: "465.8G", Model: "Samsung SSD 970 EVO Plus 500GB", Serial: "S4EVNX0R123456K", Tran: "nvme", SizeBytes: 500107862016},
		{Path: "/dev/sda", Size: "931.5G", Vendor: "ATA", Model: "WDC WD10EZEX-08W", Serial: "WD-WCC6Y1234567", Tran: "sata", SizeBytes: 1000204886016},
		{Path: "/dev/sdb", Size: "14.3G", Vendor: "SanDisk", Model: "Cruzer Blade", Serial: "4C530001230101112233", Tran: "usb", Removable: true, SizeBytes: 15376318464},
		{Path: "/dev/sdc", Size: "1.8T", Vendor: "ATA", Model: "ST2000DM008-2FR102", Serial: "ZFL0ABCD", Tran: "sata", SizeBytes: 2000398934016},
		{Path: "/dev/sdd", Size: "238.5G", Model: "CT500MX500SSD1", Serial: "2117E59AB3C1", Tran: "sata", SizeBytes: 256060514304},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Inventory(laptop) mismatch (-want +got):\n%s", diff)
	}

	// The field names are docs/server-protocol.md, plus size_bytes.
	b, err := json.Marshal(got[0])
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	var names []string
	for k := range fields {
		names = append(names, k)
	}
	wantNames := []string{"model", "path", "readonly", "removable", "serial", "size", "size_bytes", "tran", "vendor"}
	if diff := cmp.Diff(wantNames, names, cmpSorted); diff != "" {
		t.Errorf("InventoryDisk JSON fields mismatch (-want +got):\n%s", diff)
	}
}
