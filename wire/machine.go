package wire

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Boot modes: the operator's intent for a machine, chosen per machine.
const (
	BootExit         = "ipxe-exit"        // boot the local disk
	BootFlashAlways  = "bty-flash-always" // flash, boot the disk once, flash again
	BootFlashOnce    = "bty-flash-once"   // flash until the disk holds the image, then boot the disk
	BootTUI          = "bty-tui"          // the wizard
	BootInventory    = "bty-inventory"    // report the disks, boot the disk, report again
	BootRamboot      = "ramboot"          // bty-web's; this server answers with the wizard
	DefaultBootMode  = BootExit
	DiscoverBootMode = BootInventory // what an unknown MAC gets on first contact
)

// BootModes lists the modes in bty-web's order.
var BootModes = []string{BootExit, BootFlashAlways, BootFlashOnce, BootTUI, BootInventory, BootRamboot}

// FlashMode reports whether mode flashes the machine.
func FlashMode(mode string) bool { return mode == BootFlashAlways || mode == BootFlashOnce }

// MachineUpsert is the body of PUT /machines/<mac> (a full replace: what is
// left out gets its default) and of PATCH /machines/<mac> (only what is given
// changes). Power is bty's addition.
type MachineUpsert struct {
	BtyImageRef      *string  `json:"bty_image_ref"`
	Labels           []string `json:"labels"`
	BootMode         string   `json:"boot_mode"`
	SanbootDrive     *string  `json:"sanboot_drive"`
	TargetDiskSerial *string  `json:"target_disk_serial"`
	// Power is the machine's power driver: "" for none, "wol", "wol:HOST:PORT"
	// or "cmd:COMMAND" (see ValidPower).
	Power string `json:"power"`
	// Delta asks for delta reflash (bty's addition; docs/delta.md): the plan
	// says so, and the machine writes only the blocks its disk lacks. nil
	// is false in a PUT, unchanged in a PATCH.
	Delta *bool `json:"delta"`
}

var (
	labelRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 ._-]*$`)
	driveRE  = regexp.MustCompile(`^0x[0-9a-fA-F]{1,2}$`)
	MaxLabel = 64
)

// Validate checks and normalises an upsert: the ref lower-cased, labels
// sorted without duplicates, empty strings read as null, the default boot
// mode filled in.
func (u *MachineUpsert) Validate() error {
	if u.BootMode == "" {
		u.BootMode = DefaultBootMode
	}
	if !slices.Contains(BootModes, u.BootMode) {
		return fmt.Errorf("boot_mode %q: use one of %s", u.BootMode, strings.Join(BootModes, ", "))
	}
	if u.BtyImageRef != nil {
		ref, ok := NormalizeSHA256(*u.BtyImageRef)
		if !ok {
			return fmt.Errorf("bty_image_ref %q is not a ref (64 hex digits; bty fleet set --image NAME finds it)", *u.BtyImageRef)
		}
		u.BtyImageRef = &ref
	}
	if len(u.Labels) > 16 {
		return fmt.Errorf("%d labels: at most 16", len(u.Labels))
	}
	for _, l := range u.Labels {
		if err := ValidLabel(l); err != nil {
			return err
		}
	}
	slices.Sort(u.Labels)
	u.Labels = slices.Compact(u.Labels)
	if u.Labels == nil {
		u.Labels = []string{}
	}
	u.SanbootDrive = nullIfEmpty(u.SanbootDrive)
	if u.SanbootDrive != nil && !driveRE.MatchString(*u.SanbootDrive) {
		return fmt.Errorf("sanboot_drive %q: write a BIOS drive number like 0x80", *u.SanbootDrive)
	}
	u.TargetDiskSerial = nullIfEmpty(u.TargetDiskSerial)
	if u.TargetDiskSerial != nil && len(*u.TargetDiskSerial) > 128 {
		return errors.New("target_disk_serial is longer than 128 characters")
	}
	return ValidPower(u.Power)
}

// ValidLabel checks a label.
func ValidLabel(l string) error {
	if len(l) > MaxLabel || !labelRE.MatchString(l) {
		return fmt.Errorf("label %q: 1 to 64 letters, digits, spaces, '.', '_' or '-', starting with a letter or digit", l)
	}
	return nil
}

func nullIfEmpty(s *string) *string {
	if s == nil || strings.TrimSpace(*s) == "" {
		return nil
	}
	t := strings.TrimSpace(*s)
	return &t
}

// ValidPower checks a power driver: "" (none), "wol" (a Wake-on-LAN magic
// packet to the broadcast address, port 9), "wol:HOST:PORT" (to that
// address), or "cmd:COMMAND" (a shell command run with BTY_MAC and
// BTY_POWER_ACTION in its environment).
func ValidPower(p string) error {
	switch kind, arg, _ := strings.Cut(p, ":"); {
	case p == "" || p == "wol":
		return nil
	case kind == "wol":
		if _, _, err := net.SplitHostPort(arg); err != nil {
			return fmt.Errorf("power %q: write wol, or wol:HOST:PORT for a given broadcast address", p)
		}
		return nil
	case kind == "cmd":
		if strings.TrimSpace(arg) == "" || strings.ContainsAny(arg, "\n\x00") || len(arg) > 1024 {
			return fmt.Errorf("power %q: write cmd: and a one-line shell command of at most 1024 bytes", p)
		}
		return nil
	}
	return fmt.Errorf("power %q: use wol, wol:HOST:PORT or cmd:COMMAND", p)
}

// Machine is what the server knows of one machine (bty-web's Machine, plus
// bty's additions after UpdatedAt).
type Machine struct {
	MAC              string          `json:"mac"`
	BtyImageRef      *string         `json:"bty_image_ref"`
	Labels           []string        `json:"labels"`
	DiscoveredAt     *time.Time      `json:"discovered_at"`
	LastSeenAt       *time.Time      `json:"last_seen_at"`
	LastSeenIP       *string         `json:"last_seen_ip"`
	BootMode         string          `json:"boot_mode"`
	SanbootDrive     *string         `json:"sanboot_drive"`
	LastFlashedAt    *time.Time      `json:"last_flashed_at"`
	KnownDisks       []InventoryDisk `json:"known_disks"`
	KnownDisksAt     *time.Time      `json:"known_disks_at"`
	TargetDiskSerial *string         `json:"target_disk_serial"`
	CreatedAt        time.Time       `json:"created_at"`
	UpdatedAt        time.Time       `json:"updated_at"`

	Power string `json:"power"`
	Delta bool   `json:"delta"` // delta reflash (bty's addition)
	// State sums the machine up: see the State values.
	State string `json:"state"`
	// Image is the assigned image as the catalogs know it now; nil when the
	// machine has no ref or the ref is in no catalog.
	Image *ImageEntry `json:"image"`
	// Disk is what the last verified flash wrote; nil when none is known.
	Disk *DiskState `json:"disk"`
	// Quarantine is set while the machine is quarantined after failures.
	Quarantine *Quarantine `json:"quarantine"`
	// Cycle is the latest cycle, open or not.
	Cycle *Cycle `json:"cycle"`
}

// Machine states, as Machine.State and the metrics show them.
const (
	StateQuarantined = "quarantined" // failed too often; waits for bty fleet reflash
	StateArmed       = "armed"       // a cycle waits for the machine's next boot
	StateFlashing    = "flashing"    // a flash cycle is under way
	StateInventory   = "inventory"   // an inventory cycle is under way
	StateCurrent     = "current"     // the disk holds the assigned image
	StateStale       = "stale"       // the disk does not hold the assigned image
	StateUnbound     = "unbound"     // a flash mode without an image or target serial
	StateIdle        = "idle"        // a mode that does not flash
)

// DiskState is what a verified flash wrote to a machine's disk.
type DiskState struct {
	Ref    string    `json:"ref"`
	SHA256 string    `json:"sha256"`
	Serial string    `json:"serial"`
	PlanID int64     `json:"plan_id"`
	At     time.Time `json:"at"`
}

// Quarantine says since when and why a machine is quarantined.
type Quarantine struct {
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}

// Cycle is one flash or inventory attempt: armed (by a trigger) -> offered
// (GET /pxe/<mac>) -> booted (the kernel fetched) -> planned (the plan
// fetched, token handed out) -> done | failed | superseded. Its timestamps
// are the flash's timeline; DHCPAt, before the offer, is bty's first
// proxyDHCP answer to the boot that was offered the cycle.
type Cycle struct {
	ID               int64      `json:"id"` // the plan id
	MAC              string     `json:"mac"`
	Kind             string     `json:"kind"`    // "flash" or "inventory"
	State            string     `json:"state"`   // see the Cycle states
	Trigger          string     `json:"trigger"` // boot, plan, reflash, retry, rebind
	Attempt          int        `json:"attempt"` // 1 for the first try, +1 per retry
	ImageRef         string     `json:"image_ref,omitempty"`
	ImageName        string     `json:"image_name,omitempty"`
	ImageSHA256      string     `json:"image_sha256,omitempty"`
	TargetDiskSerial string     `json:"target_disk_serial,omitempty"`
	CreatedAt        time.Time  `json:"created_at"`
	DHCPAt           *time.Time `json:"dhcp_at"`
	OfferedAt        *time.Time `json:"offered_at"`
	BootedAt         *time.Time `json:"booted_at"`
	PlannedAt        *time.Time `json:"planned_at"`
	WriteStartedAt   *time.Time `json:"write_started_at"`
	EndedAt          *time.Time `json:"ended_at"`
	Reason           string     `json:"reason,omitempty"`
	Class            Class      `json:"class,omitempty"`
	SHA256           string     `json:"sha256,omitempty"` // done: what the machine reports it wrote
	BytesWritten     int64      `json:"bytes_written,omitempty"`
	// BytesFetched (done, a delta reflash) is what the machine downloaded
	// for it (Status.BytesFetched); nil for a full flash.
	BytesFetched *int64 `json:"bytes_fetched,omitempty"`
}

// Cycle kinds and states.
const (
	KindFlash     = "flash"
	KindInventory = "inventory"

	CycleArmed      = "armed"
	CycleOffered    = "offered"
	CycleBooted     = "booted"
	CyclePlanned    = "planned"
	CycleDone       = "done"
	CycleFailed     = "failed"
	CycleSuperseded = "superseded"
)

// Open reports whether the cycle has not ended.
func (c *Cycle) Open() bool {
	return c.State != CycleDone && c.State != CycleFailed && c.State != CycleSuperseded
}

// ImageEntry is one row of GET /images (bty-web's ImageEntry; SHA256 is bty's
// addition).
type ImageEntry struct {
	Name      string  `json:"name"`
	Format    string  `json:"format"`
	SizeBytes int64   `json:"size_bytes"`
	URL       string  `json:"url"`
	Ref       string  `json:"ref"`
	SHAShort  *string `json:"sha_short"`
	Arch      *string `json:"arch"`
	SHA256    string  `json:"sha256,omitempty"`
}

// Event is one entry of the server's log (GET /events).
type Event struct {
	ID           int64          `json:"id"`
	TS           time.Time      `json:"ts"`
	Kind         string         `json:"kind"`
	SubjectKind  string         `json:"subject_kind"`
	SubjectID    string         `json:"subject_id"`
	Actor        string         `json:"actor"`
	SourceIP     *string        `json:"source_ip"`
	Summary      string         `json:"summary"`
	Details      map[string]any `json:"details"`
	Acknowledged bool           `json:"acknowledged"`
}

// Events is the body of GET /events, newest first.
type Events struct {
	Events []Event `json:"events"`
}

// Reflash is the body of POST /machines/<mac>/reflash (all optional).
type Reflash struct {
	// Reason is logged with the request, e.g. "CI job 1234: tests failed".
	Reason string `json:"reason,omitempty"`
	// Power: power-cycle the machine now through its driver; nil means yes
	// when it has one.
	Power *bool `json:"power,omitempty"`
}

// Token is the body of POST /tokens and, with Token set, its answer.
type Token struct {
	Name  string `json:"name"`
	Token string `json:"token,omitempty"`
}

var tokenNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidTokenName checks an API token's name.
func ValidTokenName(name string) error {
	if !tokenNameRE.MatchString(name) {
		return fmt.Errorf("token name %q: 1 to 64 letters, digits, '.', '_' or '-'", name)
	}
	return nil
}

// Error is the body of an error answer of the JSON routes, as bty-web's.
type Error struct {
	Detail string `json:"detail"`
}

// Password is the body of PUT /admin/password: the web UI's new password.
type Password struct {
	Password string `json:"password"`
}
