package wire

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Mode is what the server wants the machine to do.
type Mode string

const (
	ModeFlash       Mode = "flash"
	ModeInteractive Mode = "interactive"
	ModeInventory   Mode = "inventory"
	ModeExit        Mode = "exit"
)

// Plan is the server's answer to GET /pxe/<mac>/plan. PlanID and AgentToken
// are bty's additions: the plan is one cycle of the server's (its id), and the
// first fetch of a cycle gets a token that the machine's posts for that cycle
// must carry (Authorization: Bearer).
type Plan struct {
	Mode             Mode   `json:"mode"`
	Image            string `json:"image,omitempty"`
	TargetDiskSerial string `json:"target_disk_serial,omitempty"`
	Name             string `json:"name,omitempty"`
	Format           string `json:"format,omitempty"`
	DiskImageSHA     string `json:"disk_image_sha,omitempty"`
	Catalog          string `json:"catalog,omitempty"`
	PlanID           int64  `json:"plan_id,omitempty"`
	AgentToken       string `json:"agent_token,omitempty"`
	// Delta asks the machine to reflash by writing only the blocks its disk
	// lacks (the machine's binding asks for it, docs/delta.md). BlockIndex
	// and BlockIndexDigest are the image's block index ("sha256:<hex>" of
	// its bytes), when the server has one; without them a delta reflash reads
	// the whole image and writes only what differs.
	Delta            bool   `json:"delta,omitempty"`
	BlockIndex       string `json:"block_index,omitempty"`
	BlockIndexDigest string `json:"block_index_digest,omitempty"`
	// Reason says why the server chose this mode when it is not the obvious
	// one (a quarantined machine, a ramboot machine served the wizard).
	Reason string `json:"reason,omitempty"`
}

// ParsePlan decodes and checks a plan; an error says what is wrong, and the
// caller falls back to the wizard with it. Unknown fields are ignored.
func ParsePlan(b []byte) (Plan, error) {
	var p Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return Plan{}, fmt.Errorf("plan is not valid JSON: %w", err)
	}
	switch p.Mode {
	case ModeFlash:
		var missing []string
		if p.Image == "" {
			missing = append(missing, "image")
		}
		if p.TargetDiskSerial == "" {
			missing = append(missing, "target_disk_serial")
		}
		if len(missing) > 0 {
			return Plan{}, fmt.Errorf("flash plan is missing %s", strings.Join(missing, " and "))
		}
		if p.DiskImageSHA != "" {
			sum, ok := NormalizeSHA256(p.DiskImageSHA)
			if !ok {
				return Plan{}, fmt.Errorf("flash plan: disk_image_sha %q is not 64 hex digits", p.DiskImageSHA)
			}
			p.DiskImageSHA = sum
		}
		if (p.BlockIndex == "") != (p.BlockIndexDigest == "") {
			return Plan{}, fmt.Errorf("flash plan: block_index and block_index_digest go together")
		}
		if p.BlockIndexDigest != "" {
			hx, prefixed := strings.CutPrefix(p.BlockIndexDigest, "sha256:")
			sum, ok := NormalizeSHA256(hx)
			if !prefixed || !ok {
				return Plan{}, fmt.Errorf("flash plan: block_index_digest %q is not sha256:<64 hex digits>", p.BlockIndexDigest)
			}
			p.BlockIndexDigest = "sha256:" + sum
		}
	case ModeInteractive:
		if p.Catalog == "" {
			return Plan{}, fmt.Errorf("interactive plan is missing catalog")
		}
	case ModeInventory, ModeExit:
	case "":
		return Plan{}, fmt.Errorf("plan has no mode")
	default:
		return Plan{}, fmt.Errorf("plan has unknown mode %q", p.Mode)
	}
	return p, nil
}
