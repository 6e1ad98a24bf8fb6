package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Limits of the machine-facing bodies, bty-web's (_models.py).
const (
	MaxReason    = 500     // characters of a status reason
	MaxDisks     = 64      // disks in one inventory
	MaxLSHWBytes = 4 << 20 // an lshw tree larger than this is not kept
)

// Status is the body of POST /pxe/<mac>/status. PlanID, SHA256 and Class are
// bty's additions, sent only to a server whose plan carried a plan_id (an
// older server refuses unknown fields).
type Status struct {
	Status string `json:"status"` // "done" or "failed"
	Reason string `json:"reason,omitempty"`
	// PlanID is the plan this status ends.
	PlanID int64 `json:"plan_id,omitempty"`
	// SHA256 (done) is the digest of the source bytes the verified flash wrote.
	SHA256 string `json:"sha256,omitempty"`
	// Class (failed) is the failure's category, one of the Class values.
	Class Class `json:"class,omitempty"`
	// BytesWritten (done) is how many bytes of the image went to the disk,
	// zeroed ranges included.
	BytesWritten int64 `json:"bytes_written,omitempty"`
	// BytesFetched (done, delta) is how many bytes the machine downloaded
	// for a delta reflash: the blocks its disk lacked (compressed, the
	// index not counted), or the whole image when there was no block index.
	// Sent only when the plan asked for delta (a server that asks knows the
	// field); nil otherwise, so 0 is a delta that fetched nothing.
	BytesFetched *int64 `json:"bytes_fetched,omitempty"`
}

// Status values.
const (
	StatusDone   = "done"
	StatusFailed = "failed"
)

// Class is the category of a failure, as bty's exit codes group them.
type Class string

const (
	ClassIntegrity Class = "integrity" // digest or length mismatch, corrupt stream (exit 4)
	ClassSource    Class = "source"    // source unavailable (exit 5)
	ClassRefused   Class = "refused"   // a safety check refused the target, e.g. no disk with the serial (exit 3)
	ClassUsage     Class = "usage"     // a plan bty cannot follow (exit 2)
	ClassIO        Class = "io"        // writing or reading the target failed (exit 1)
	ClassCancelled Class = "cancelled" // the run was cancelled (exit 130)
)

func (c Class) valid() bool {
	switch c {
	case ClassIntegrity, ClassSource, ClassRefused, ClassUsage, ClassIO, ClassCancelled:
		return true
	}
	return false
}

// Failed builds a failed status with the reason cut to MaxReason characters.
func Failed(reason string, class Class) Status {
	if r := []rune(reason); len(r) > MaxReason {
		reason = string(r[:MaxReason])
	}
	return Status{Status: StatusFailed, Reason: reason, Class: class}
}

// Validate checks a status as the server takes it.
func (s *Status) Validate() error {
	switch s.Status {
	case StatusDone, StatusFailed:
	default:
		return fmt.Errorf("status %q: say \"done\" or \"failed\"", s.Status)
	}
	if n := utf8.RuneCountInString(s.Reason); n > MaxReason {
		return fmt.Errorf("reason has %d characters, at most %d are taken", n, MaxReason)
	}
	if s.PlanID < 0 {
		return fmt.Errorf("plan_id %d is negative", s.PlanID)
	}
	if s.SHA256 != "" {
		sum, ok := NormalizeSHA256(s.SHA256)
		if !ok {
			return fmt.Errorf("sha256 %q is not 64 hex digits", s.SHA256)
		}
		s.SHA256 = sum
	}
	if s.BytesWritten < 0 || (s.BytesFetched != nil && *s.BytesFetched < 0) {
		return fmt.Errorf("bytes_written and bytes_fetched cannot be negative")
	}
	if s.Class != "" && !s.Class.valid() {
		return fmt.Errorf("class %q is not one of integrity, source, refused, usage, io, cancelled", s.Class)
	}
	return nil
}

// InventoryDisk is one disk of an inventory. Fields a server does not know
// are ignored (bty-web: extra=ignore per disk), null reads as empty.
type InventoryDisk struct {
	Path      string `json:"path"`
	Size      string `json:"size"` // human-readable, as lsblk: "500G", "7.5G"
	Vendor    string `json:"vendor"`
	Model     string `json:"model"`
	Serial    string `json:"serial"`
	Tran      string `json:"tran"`
	Removable bool   `json:"removable"`
	Readonly  bool   `json:"readonly"`
	SizeBytes int64  `json:"size_bytes"` // bty's addition
}

// UnmarshalJSON decodes leniently, so that a strict decoder of the enclosing
// Inventory still ignores unknown fields of a disk.
func (d *InventoryDisk) UnmarshalJSON(b []byte) error {
	type plain InventoryDisk
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*d = InventoryDisk(p)
	return nil
}

// Inventory is the body of POST /pxe/<mac>/inventory.
type Inventory struct {
	Disks []InventoryDisk `json:"disks"`
	// LSHW is lshw -json's tree (an object or a list), or null.
	LSHW json.RawMessage `json:"lshw,omitempty"`
}

// Validate checks an inventory as the server takes it (bty-web's limits).
func (inv *Inventory) Validate() error {
	if len(inv.Disks) > MaxDisks {
		return fmt.Errorf("%d disks: at most %d are taken", len(inv.Disks), MaxDisks)
	}
	for i, d := range inv.Disks {
		for _, f := range []struct {
			name, v string
			max     int
		}{{"path", d.Path, 255}, {"size", d.Size, 32}, {"vendor", d.Vendor, 64}, {"model", d.Model, 128}, {"serial", d.Serial, 128}, {"tran", d.Tran, 32}} {
			if utf8.RuneCountInString(f.v) > f.max {
				return fmt.Errorf("disk %d: %s is longer than %d characters", i, f.name, f.max)
			}
		}
		if d.Path == "" {
			return fmt.Errorf("disk %d: path is missing", i)
		}
	}
	if l := inv.LSHW; len(l) > 0 && string(l) != "null" && l[0] != '{' && l[0] != '[' {
		return errors.New("lshw must be an object, a list or null")
	}
	return nil
}

// Progress is the body of POST /pxe/<mac>/progress (bty's addition): where a
// flash is, posted when writing starts, at each quarter, and while it writes
// at most once a second.
type Progress struct {
	PlanID       int64  `json:"plan_id"`
	Phase        string `json:"phase"` // "writing", "verifying", ...
	BytesWritten int64  `json:"bytes_written"`
	BytesTotal   int64  `json:"bytes_total,omitempty"` // the image's size, 0 when unknown
}

// Validate checks a progress post.
func (p *Progress) Validate() error {
	switch {
	case p.PlanID <= 0:
		return errors.New("plan_id is missing")
	case p.Phase == "" || len(p.Phase) > 32:
		return errors.New("phase must be a word of at most 32 characters")
	case p.BytesWritten < 0 || p.BytesTotal < 0:
		return errors.New("byte counts are negative")
	}
	return nil
}
