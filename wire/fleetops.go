package wire

import (
	"fmt"
	"time"
)

// The admin API's rollouts (/rollouts) and image cache (/admin/cache).

// RolloutStart is the body of POST /rollouts.
type RolloutStart struct {
	Label string `json:"label"`
	// Image is the image's ref (bty fleet resolves a name first).
	Image string `json:"image"`
	// MaxParallel machines flash at a time; MaxFailures machines may fail
	// for good before the rollout stops.
	MaxParallel int `json:"max_parallel"`
	MaxFailures int `json:"max_failures"`
}

// Validate checks a start request.
func (s *RolloutStart) Validate() error {
	if err := ValidLabel(s.Label); err != nil {
		return err
	}
	ref, ok := NormalizeSHA256(s.Image)
	if !ok {
		return fmt.Errorf("image %q is not a ref (64 hex digits): give the image's ref", s.Image)
	}
	s.Image = ref
	if s.MaxParallel < 1 || s.MaxParallel > 10000 {
		return fmt.Errorf("max_parallel %d: give 1 to 10000 machines", s.MaxParallel)
	}
	if s.MaxFailures < 0 {
		return fmt.Errorf("max_failures %d: give 0 or more", s.MaxFailures)
	}
	return nil
}

// Rollout states.
const (
	RolloutRunning   = "running"   // admits machines as slots free
	RolloutPaused    = "paused"    // admits none; the machines flashing go on
	RolloutStopped   = "stopped"   // more machines failed than max_failures: paused until resumed
	RolloutCancelled = "cancelled" // the waiting machines keep their image
	RolloutDone      = "done"      // every machine ended
)

// Rollout machine states.
const (
	MemberWaiting   = "waiting"   // boots its disk until its turn
	MemberFlashing  = "flashing"  // admitted: bound to the image, its flash under way
	MemberDone      = "done"      // its disk holds the image
	MemberFailed    = "failed"    // its flash failed for good (quarantined)
	MemberSkipped   = "skipped"   // not a flash-mode machine with a target, or rebound or deleted meanwhile
	MemberCancelled = "cancelled" // still waiting when the rollout was cancelled
)

// Rollout is a rollout's JSON: GET /rollouts/ID, and the answers of start,
// pause, resume and cancel.
type Rollout struct {
	ID          int64            `json:"id"`
	Label       string           `json:"label"`
	ImageRef    string           `json:"image_ref"`
	ImageName   string           `json:"image_name"`
	MaxParallel int              `json:"max_parallel"`
	MaxFailures int              `json:"max_failures"`
	State       string           `json:"state"`
	Reason      string           `json:"reason,omitempty"`
	Actor       string           `json:"actor"`
	CreatedAt   time.Time        `json:"created_at"`
	UpdatedAt   time.Time        `json:"updated_at"`
	EndedAt     *time.Time       `json:"ended_at"`
	Counts      map[string]int   `json:"counts"` // machines per state
	Machines    []RolloutMachine `json:"machines,omitempty"`
}

// RolloutMachine is one machine of a rollout.
type RolloutMachine struct {
	MAC        string     `json:"mac"`
	State      string     `json:"state"`
	Reason     string     `json:"reason,omitempty"`
	AdmittedAt *time.Time `json:"admitted_at"`
	EndedAt    *time.Time `json:"ended_at"`
}

// CacheEntry is one image in a server's fan-out cache (GET /admin/cache).
type CacheEntry struct {
	SHA256 string `json:"sha256,omitempty"` // "" while a fill of an image without a digest runs
	Name   string `json:"name"`
	Ref    string `json:"ref,omitempty"`
	Src    string `json:"src"` // the origin
	// State: filling, complete, or failed (the last fill, kept a minute
	// so that retries do not hammer the origin).
	State     string    `json:"state"`
	SizeBytes int64     `json:"size_bytes"` // -1 while unknown
	Filled    int64     `json:"filled_bytes"`
	Readers   int       `json:"readers"` // downloads in progress
	LastUsed  time.Time `json:"last_used"`
	Error     string    `json:"error,omitempty"`
}

// Cache is GET /admin/cache.
type Cache struct {
	Dir       string       `json:"dir"`
	MaxBytes  int64        `json:"max_bytes"` // 0: no cap
	UsedBytes int64        `json:"used_bytes"`
	Entries   []CacheEntry `json:"entries"`
}

// CacheWarm is the body of POST /admin/cache/warm: an image's name or ref.
type CacheWarm struct {
	Image string `json:"image"`
}

// RolloutChange is the optional body of POST /rollouts/ID/resume: new limits.
type RolloutChange struct {
	MaxParallel *int `json:"max_parallel,omitempty"`
	MaxFailures *int `json:"max_failures,omitempty"`
}
