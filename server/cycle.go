package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"bty/catalog"
	"bty/server/store"
	"bty/wire"
)

// The boot-mode state machine. A machine's state is its row (operator intent:
// mode, image, target serial, power driver; observations: last seen, disks,
// what the disk holds, quarantine) and its cycles. Each decision reads both
// inside one store transaction and writes its outcome there too, so any
// number of servers on one database agree.
//
//	trigger (reflash, retry, a boot that wants a flash)   -> armed
//	GET /pxe/<mac>            (the offer for this boot)   -> offered
//	GET /boot/<kernel>?mac=   (the kernel fetched)        -> booted
//	GET /pxe/<mac>/plan       (plan id, agent token)      -> planned
//	POST status done | failed, POST inventory             -> done | failed
//	a newer trigger while open                            -> superseded
//	a new boot while open (crash, power loss)             -> failed, then retried
//
// A failed flash is retried (a new cycle, attempt+1) until Retries retries
// have failed; then the machine is quarantined until someone reflashes it.

// event appends one entry to the log, in tx.
func event(tx *store.Tx, now time.Time, kind, mac, actor, ip, summary string, details map[string]any) error {
	var d string
	if details != nil {
		b, err := json.Marshal(details)
		if err != nil {
			return err
		}
		d = string(b)
	}
	return tx.AddEvent(&store.Event{TS: now, Kind: kind, SubjectKind: "machine", SubjectID: mac, Actor: actor, SourceIP: ip, Summary: summary, Details: d})
}

// touch returns the machine, registering an unknown MAC as bty-inventory (a
// machine.discovered event), and notes that it was seen now from ip. The
// caller writes it back.
func touch(tx *store.Tx, mac, ip string, now time.Time) (*store.Machine, error) {
	m, err := tx.Machine(mac)
	if errors.Is(err, store.ErrNotFound) {
		m = &store.Machine{MAC: mac, BootMode: wire.DiscoverBootMode, Labels: []string{}, DiscoveredAt: now, CreatedAt: now}
		details := map[string]any{"bty_image_ref": nil, "boot_mode": m.BootMode, "sanboot_drive": nil, "labels": []string{}, "target_disk_serial": nil}
		if err := event(tx, now, "machine.discovered", mac, "pxe-client", ip, "new machine "+mac+" registered as "+m.BootMode, details); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	if m.DiscoveredAt.IsZero() {
		m.DiscoveredAt = now
	}
	m.LastSeenAt, m.LastSeenIP, m.UpdatedAt = now, ip, now
	return m, nil
}

func latestCycle(tx *store.Tx, mac string) (*store.Cycle, error) {
	c, err := tx.LatestCycle(mac)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return c, err
}

func isOpen(c *store.Cycle) bool {
	return c != nil && c.State != wire.CycleDone && c.State != wire.CycleFailed && c.State != wire.CycleSuperseded
}

// newCycle starts a cycle for m in state (armed, offered or planned).
func newCycle(tx *store.Tx, m *store.Machine, kind, cause string, attempt int, state string, now time.Time) (*store.Cycle, error) {
	c := &store.Cycle{MAC: m.MAC, Kind: kind, State: state, Cause: cause, Attempt: attempt, CreatedAt: now}
	if kind == wire.KindFlash {
		c.ImageRef, c.TargetDiskSerial = m.ImageRef, m.TargetDiskSerial
	}
	switch state {
	case wire.CycleOffered:
		c.OfferedAt = now
	case wire.CyclePlanned:
		c.PlannedAt = now
	}
	return c, tx.InsertCycle(c)
}

// supersede ends an open cycle because a newer one replaces it.
func supersede(tx *store.Tx, c *store.Cycle, why, actor, ip string, now time.Time) error {
	c.State, c.EndedAt, c.Reason = wire.CycleSuperseded, now, why
	if err := tx.PutCycle(c); err != nil {
		return err
	}
	return event(tx, now, "cycle.superseded", c.MAC, actor, ip, fmt.Sprintf("plan %d superseded: %s", c.ID, why), map[string]any{"plan_id": c.ID, "reason": why})
}

// failure is what failAttempt decided.
type failure struct {
	retry       *store.Cycle // the armed retry, or nil
	quarantined bool
}

// failAttempt ends a flash cycle as failed and applies the retry policy: a
// new armed cycle while retries remain, else quarantine. An inventory cycle
// is just ended.
func (s *Server) failAttempt(tx *store.Tx, m *store.Machine, c *store.Cycle, reason, class, actor, ip string, now time.Time) (failure, error) {
	c.State, c.EndedAt, c.Reason, c.Class = wire.CycleFailed, now, reason, class
	if err := tx.PutCycle(c); err != nil {
		return failure{}, err
	}
	kind := "machine.flash_failed"
	if c.Kind == wire.KindInventory {
		kind = "machine.inventory_failed"
	}
	details := map[string]any{"reason": reason, "plan_id": c.ID, "attempt": c.Attempt}
	if class != "" {
		details["class"] = class
	}
	if err := event(tx, now, kind, m.MAC, actor, ip, fmt.Sprintf("plan %d failed (attempt %d): %s", c.ID, c.Attempt, reason), details); err != nil {
		return failure{}, err
	}
	s.metrics.cycleEnded(c)
	if c.Kind != wire.KindFlash {
		return failure{}, nil
	}
	if c.Attempt <= s.opt.Retries {
		r, err := newCycle(tx, m, wire.KindFlash, "retry", c.Attempt+1, wire.CycleArmed, now)
		if err != nil {
			return failure{}, err
		}
		err = event(tx, now, "machine.retry", m.MAC, "bty-serve", "", fmt.Sprintf("plan %d armed: retry %d of %d", r.ID, c.Attempt, s.opt.Retries), map[string]any{"plan_id": r.ID, "after": c.ID})
		return failure{retry: r}, err
	}
	m.QuarantinedAt, m.QuarantineReason, m.UpdatedAt = now, fmt.Sprintf("%d failed attempts; last: %s", c.Attempt, reason), now
	err := event(tx, now, "machine.quarantined", m.MAC, "bty-serve", "", fmt.Sprintf("%s quarantined after %d failed attempts (bty fleet reflash %s releases it)", m.MAC, c.Attempt, m.MAC),
		map[string]any{"plan_id": c.ID, "attempts": c.Attempt, "reason": reason})
	return failure{quarantined: true}, err
}

// diskCurrent reports whether the disk holds the assigned image: the last
// verified flash wrote this ref to this serial, and the digest still matches
// the image's when both are known.
func diskCurrent(m *store.Machine, current string) bool {
	return m.DiskRef != "" && m.DiskRef == m.ImageRef && m.DiskSerial == m.TargetDiskSerial &&
		(current == "" || m.DiskSHA256 == "" || m.DiskSHA256 == current)
}

// offer is the decision for one boot.
type offer struct {
	kind    string // bty-web's offer_kind
	script  string
	cycle   *store.Cycle // the cycle offered, or nil
	details map[string]any
}

// decideOffer chooses the script for a new boot of m, whose latest cycle is c.
func (s *Server) decideOffer(tx *store.Tx, m *store.Machine, c *store.Cycle, images map[string]catalog.Entry, base, ip string, now time.Time) (offer, error) {
	mode := m.BootMode
	live := func(kind, comment string, cy *store.Cycle) offer {
		return offer{kind: kind, script: s.liveScript(base, m.MAC, m.MAC+" boot_mode="+mode+" "+comment), cycle: cy}
	}
	disk := func(kind string) offer {
		return offer{kind: kind, script: diskScript(m.MAC, mode, m.SanbootDrive)}
	}
	// A cycle left open by the previous boot ended without a word: a crash,
	// a power loss, a machine reset by hand.
	if isOpen(c) && c.State != wire.CycleArmed {
		f, err := s.failAttempt(tx, m, c, "the machine booted again before it reported (crash, power loss or reset)", "", "bty-serve", ip, now)
		if err != nil {
			return offer{}, err
		}
		if f.retry != nil {
			c = f.retry
		}
	}
	if !m.QuarantinedAt.IsZero() {
		if s.opt.QuarantineWizard {
			return live("quarantined-bty-tui", "quarantined: the wizard", nil), nil
		}
		return disk("quarantined-ipxe-exit"), nil
	}
	switch mode {
	case wire.BootTUI:
		return live("bty-tui", "the wizard", nil), nil
	case wire.BootRamboot:
		o := live("ramboot-fallback-tui", "ramboot is not served by bty serve: the wizard", nil)
		o.details = map[string]any{"reason": "this server does not do ramboot"}
		return o, nil
	case wire.BootInventory:
		if c != nil && c.Kind == wire.KindInventory && c.State == wire.CycleDone {
			n, err := tx.OffersSince(m.MAC, c.EndedAt)
			if err != nil || n == 0 {
				return disk("bty-inventory-ipxe-exit"), err
			}
		}
		cy, err := s.offerCycle(tx, m, c, wire.KindInventory, now)
		return live("bty-inventory", fmt.Sprintf("inventory, plan %d", cy.ID), cy), err
	case wire.BootFlashAlways, wire.BootFlashOnce:
		if m.ImageRef == "" {
			return offer{kind: "unknown", script: unknownScript(m.MAC)}, nil
		}
		e, ok := images[m.ImageRef]
		if !ok {
			return offer{kind: "exit-fallback", script: exitScript(m.MAC, mode, m.ImageRef, "orphan_ref"), details: map[string]any{"reason": "orphan_ref"}}, nil
		}
		if m.TargetDiskSerial == "" {
			return offer{kind: "exit-fallback", script: exitScript(m.MAC, mode, m.ImageRef, "no_target_disk"), details: map[string]any{"reason": "no_target_disk"}}, nil
		}
		armed := c != nil && c.State == wire.CycleArmed
		if !armed {
			if mode == wire.BootFlashOnce && diskCurrent(m, e.SHA256) {
				return disk(mode + "-ipxe-exit"), nil
			}
			if mode == wire.BootFlashAlways && c != nil && c.Kind == wire.KindFlash && c.State == wire.CycleDone {
				n, err := tx.OffersSince(m.MAC, c.EndedAt)
				if err != nil || n == 0 {
					return disk(mode + "-ipxe-exit"), err
				}
			}
		}
		cy, err := s.offerCycle(tx, m, c, wire.KindFlash, now)
		return live(mode, fmt.Sprintf("flash %s to serial %s, plan %d", e.Name, m.TargetDiskSerial, cy.ID), cy), err
	}
	return disk(wire.BootExit), nil
}

// offerCycle marks the armed cycle c offered, or starts a new offered cycle
// of kind (superseding an armed cycle of another kind).
func (s *Server) offerCycle(tx *store.Tx, m *store.Machine, c *store.Cycle, kind string, now time.Time) (*store.Cycle, error) {
	if c != nil && c.State == wire.CycleArmed {
		if c.Kind == kind {
			c.State, c.OfferedAt = wire.CycleOffered, now
			if kind == wire.KindFlash {
				c.ImageRef, c.TargetDiskSerial = m.ImageRef, m.TargetDiskSerial
			}
			return c, tx.PutCycle(c)
		}
		if err := supersede(tx, c, "the boot mode is now "+m.BootMode, "bty-serve", "", now); err != nil {
			return nil, err
		}
	}
	cause, attempt := "boot", 1
	if c != nil && c.Kind == kind && c.State == wire.CycleFailed && kind == wire.KindInventory {
		cause, attempt = "retry", c.Attempt+1
	}
	return newCycle(tx, m, kind, cause, attempt, wire.CycleOffered, now)
}

// decidePlan chooses the plan for m, whose latest cycle is c. The first fetch
// of a cycle's plan moves it to planned and hands out its agent token.
func (s *Server) decidePlan(tx *store.Tx, m *store.Machine, c *store.Cycle, images map[string]catalog.Entry, base string, now time.Time) (wire.Plan, *store.Cycle, error) {
	wizard := wire.Plan{Mode: wire.ModeInteractive, Catalog: base + "/catalog.toml"}
	exit := wire.Plan{Mode: wire.ModeExit}
	if !m.QuarantinedAt.IsZero() {
		why := "quarantined: " + m.QuarantineReason
		if s.opt.QuarantineWizard {
			wizard.Reason = why
			return wizard, nil, nil
		}
		exit.Reason = why
		return exit, nil, nil
	}
	var kind string
	switch m.BootMode {
	case wire.BootTUI:
		return wizard, nil, nil
	case wire.BootRamboot:
		wizard.Reason = "this server does not do ramboot: the wizard instead"
		return wizard, nil, nil
	case wire.BootInventory:
		kind = wire.KindInventory
	case wire.BootFlashAlways, wire.BootFlashOnce:
		if m.ImageRef == "" {
			return exit, nil, nil
		}
		if _, ok := images[m.ImageRef]; !ok || m.TargetDiskSerial == "" {
			wizard.Reason = "the machine's image is in no catalog, or it has no target disk serial"
			return wizard, nil, nil
		}
		kind = wire.KindFlash
	default:
		return exit, nil, nil
	}
	var token string
	if isOpen(c) && c.Kind != kind {
		if err := supersede(tx, c, "the boot mode is now "+m.BootMode, "bty-serve", "", now); err != nil {
			return wire.Plan{}, nil, err
		}
	}
	if !isOpen(c) || c.Kind != kind {
		var err error
		if c, err = newCycle(tx, m, kind, "plan", 1, wire.CyclePlanned, now); err != nil {
			return wire.Plan{}, nil, err
		}
	}
	if c.TokenHash == "" {
		token, c.TokenHash = newToken()
		c.State, c.PlannedAt = wire.CyclePlanned, now
	}
	p := wire.Plan{Mode: wire.ModeInventory, PlanID: c.ID, AgentToken: token}
	if kind == wire.KindFlash {
		e := images[m.ImageRef]
		c.ImageRef, c.ImageName, c.ImageSHA256, c.TargetDiskSerial = m.ImageRef, e.Name, e.SHA256, m.TargetDiskSerial
		p = wire.Plan{Mode: wire.ModeFlash, Image: s.images.url(e, base), TargetDiskSerial: m.TargetDiskSerial, Name: e.Name,
			Format: e.Format, DiskImageSHA: e.SHA256, PlanID: c.ID, AgentToken: token, Delta: m.Delta}
		if m.Delta && e.BlockIndex != "" {
			p.BlockIndex, p.BlockIndexDigest = s.images.rebase(e, e.BlockIndex, base), e.BlockIndexDigest
		}
	}
	return p, c, tx.PutCycle(c)
}
