package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"bty/catalog"
	"bty/server/store"
	"bty/wire"
)

// The admin API: machines, cycles, reflash (events and tokens: events.go). Every route needs
// an API token (Server.admin).

// machineState sums a machine up (wire.Machine.State).
func machineState(m *store.Machine, c *store.Cycle, current string) string {
	switch {
	case !m.QuarantinedAt.IsZero():
		return wire.StateQuarantined
	case isOpen(c) && c.State == wire.CycleArmed:
		return wire.StateArmed
	case isOpen(c) && c.Kind == wire.KindInventory:
		return wire.StateInventory
	case isOpen(c):
		return wire.StateFlashing
	case !wire.FlashMode(m.BootMode):
		return wire.StateIdle
	case m.ImageRef == "" || m.TargetDiskSerial == "":
		return wire.StateUnbound
	case diskCurrent(m, current):
		return wire.StateCurrent
	}
	return wire.StateStale
}

func tp(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func sp(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func wireCycle(c *store.Cycle) *wire.Cycle {
	if c == nil {
		return nil
	}
	return &wire.Cycle{ID: c.ID, MAC: c.MAC, Kind: c.Kind, State: c.State, Trigger: c.Cause, Attempt: c.Attempt,
		ImageRef: c.ImageRef, ImageName: c.ImageName, ImageSHA256: c.ImageSHA256, TargetDiskSerial: c.TargetDiskSerial,
		CreatedAt: c.CreatedAt, DHCPAt: tp(c.DHCPAt), OfferedAt: tp(c.OfferedAt), BootedAt: tp(c.BootedAt), PlannedAt: tp(c.PlannedAt),
		WriteStartedAt: tp(c.WriteStartedAt), EndedAt: tp(c.EndedAt), Reason: c.Reason, Class: wire.Class(c.Class),
		SHA256: c.SHA256, BytesWritten: c.BytesWritten, BytesFetched: c.BytesFetched}
}

type plainDisk wire.InventoryDisk

func (s *Server) wireMachine(m *store.Machine, c *store.Cycle, images map[string]catalog.Entry, base string) wire.Machine {
	out := wire.Machine{MAC: m.MAC, BtyImageRef: sp(m.ImageRef), Labels: m.Labels, DiscoveredAt: tp(m.DiscoveredAt),
		LastSeenAt: tp(m.LastSeenAt), LastSeenIP: sp(m.LastSeenIP), BootMode: m.BootMode, SanbootDrive: sp(m.SanbootDrive),
		LastFlashedAt: tp(m.LastFlashedAt), KnownDisksAt: tp(m.KnownDisksAt), TargetDiskSerial: sp(m.TargetDiskSerial),
		CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt, Power: m.Power, Delta: m.Delta, Cycle: wireCycle(c)}
	if m.KnownDisks != "" {
		// Decoded as plain structs: InventoryDisk's own UnmarshalJSON (for
		// the lenient inventory post) would parse each disk twice.
		var ds []plainDisk
		json.Unmarshal([]byte(m.KnownDisks), &ds)
		out.KnownDisks = make([]wire.InventoryDisk, len(ds))
		for i, d := range ds {
			out.KnownDisks[i] = wire.InventoryDisk(d)
		}
	}
	e, ok := images[m.ImageRef]
	if ok {
		ie := s.images.entry(e, base)
		out.Image = &ie
	}
	out.State = machineState(m, c, e.SHA256)
	if m.DiskRef != "" {
		out.Disk = &wire.DiskState{Ref: m.DiskRef, SHA256: m.DiskSHA256, Serial: m.DiskSerial, PlanID: m.DiskPlanID, At: m.DiskAt}
	}
	if !m.QuarantinedAt.IsZero() {
		out.Quarantine = &wire.Quarantine{At: m.QuarantinedAt, Reason: m.QuarantineReason}
	}
	return out
}

func (s *Server) listMachines(w http.ResponseWriter, r *http.Request) {
	out, err := s.Machines(r.Context(), r.URL.Query().Get("label"), base(r))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// Machines returns the machines (with label, when it is not "") in their
// wire form, for a client that reached the server at base.
func (s *Server) Machines(ctx context.Context, label, base string) ([]wire.Machine, error) {
	images, err := s.images.byRef(ctx)
	if err != nil {
		return nil, err
	}
	out := []wire.Machine{}
	err = s.opt.Store.View(ctx, func(tx *store.Tx) error {
		ms, err := tx.Machines(label)
		if err != nil {
			return err
		}
		cycles, err := tx.LatestCycles()
		if err != nil {
			return err
		}
		for _, m := range ms {
			out = append(out, s.wireMachine(m, cycles[m.MAC], images, base))
		}
		return nil
	})
	return out, err
}

// machineOut reads one machine in its wire form.
func (s *Server) machineOut(ctx context.Context, mac, base string) (wire.Machine, error) {
	images, err := s.images.byRef(ctx)
	if err != nil {
		return wire.Machine{}, err
	}
	var out wire.Machine
	err = s.opt.Store.View(ctx, func(tx *store.Tx) error {
		m, err := tx.Machine(mac)
		if errors.Is(err, store.ErrNotFound) {
			return errorf(http.StatusNotFound, "no machine %s", mac)
		}
		if err != nil {
			return err
		}
		c, err := latestCycle(tx, mac)
		out = s.wireMachine(m, c, images, base)
		return err
	})
	return out, err
}

func (s *Server) getMachine(w http.ResponseWriter, r *http.Request) {
	mac, err := pathMAC(r)
	if err == nil {
		var m wire.Machine
		if m, err = s.machineOut(r.Context(), mac, base(r)); err == nil {
			writeJSON(w, http.StatusOK, m)
			return
		}
	}
	s.writeErr(w, err)
}

// upsertOf is the MachineUpsert that gives m.
func upsertOf(m *store.Machine) wire.MachineUpsert {
	return wire.MachineUpsert{BtyImageRef: sp(m.ImageRef), Labels: m.Labels, BootMode: m.BootMode,
		SanbootDrive: sp(m.SanbootDrive), TargetDiskSerial: sp(m.TargetDiskSerial), Power: m.Power, Delta: &m.Delta}
}

func (s *Server) putMachine(w http.ResponseWriter, r *http.Request)   { s.upsert(w, r, false) }
func (s *Server) patchMachine(w http.ResponseWriter, r *http.Request) { s.upsert(w, r, true) }

// upsert writes a machine's settings: PUT replaces them all (what the body
// leaves out gets its default, bty-web's rule), PATCH only those the body
// names. Either creates an unknown machine.
func (s *Server) upsert(w http.ResponseWriter, r *http.Request, patch bool) {
	mac, err := pathMAC(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		s.writeErr(w, errorf(http.StatusRequestEntityTooLarge, "the body is too large"))
		return
	}
	now, who, ip := s.now(), actor(r), clientIP(r)
	var assigned string // an image newly bound: pre-warmed in the cache
	err = s.opt.Store.Update(r.Context(), func(tx *store.Tx) error {
		m, err := tx.Machine(mac)
		if errors.Is(err, store.ErrNotFound) {
			m, err = &store.Machine{MAC: mac, BootMode: wire.DefaultBootMode, Labels: []string{}, CreatedAt: now}, nil
		}
		if err != nil {
			return err
		}
		old := m.ImageRef
		var u wire.MachineUpsert
		if patch {
			u = upsertOf(m)
		}
		if err := strictJSON(body, &u); err != nil {
			return err
		}
		if err := u.Validate(); err != nil {
			return errorf(http.StatusUnprocessableEntity, "%v", err)
		}
		m.ImageRef, m.Labels, m.BootMode, m.Power = deref(u.BtyImageRef), u.Labels, u.BootMode, u.Power
		m.SanbootDrive, m.TargetDiskSerial, m.UpdatedAt = deref(u.SanbootDrive), deref(u.TargetDiskSerial), now
		m.Delta = u.Delta != nil && *u.Delta
		assigned = ""
		if m.ImageRef != old {
			assigned = m.ImageRef
			if err := leaveRollout(tx, m, who, now); err != nil {
				return err
			}
		}
		created, err := tx.PutMachine(m)
		if err != nil {
			return err
		}
		kind := "machine.upserted"
		if created {
			kind = "machine.created"
		}
		details := map[string]any{"bty_image_ref": u.BtyImageRef, "boot_mode": u.BootMode, "sanboot_drive": u.SanbootDrive,
			"labels": u.Labels, "target_disk_serial": u.TargetDiskSerial, "power": u.Power, "delta": m.Delta}
		return event(tx, now, kind, mac, who, ip, fmt.Sprintf("%s: boot_mode=%s", mac, u.BootMode), details)
	})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	if assigned != "" {
		s.prewarm(assigned)
	}
	out, err := s.machineOut(r.Context(), mac, base(r))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// strictJSON decodes b into v, refusing unknown fields (a 422).
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytesReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(http.StatusUnprocessableEntity, "bad body: %v", err)
	}
	return nil
}

func (s *Server) deleteMachine(w http.ResponseWriter, r *http.Request) {
	mac, err := pathMAC(r)
	if err == nil {
		now, who, ip := s.now(), actor(r), clientIP(r)
		err = s.opt.Store.Update(r.Context(), func(tx *store.Tx) error {
			if err := tx.DeleteMachine(mac); errors.Is(err, store.ErrNotFound) {
				return errorf(http.StatusNotFound, "no machine %s", mac)
			} else if err != nil {
				return err
			}
			return event(tx, now, "machine.deleted", mac, who, ip, mac+" deleted", nil)
		})
	}
	if err != nil {
		s.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// machineBlob serves the stored lshw tree or disk list as a download.
func (s *Server) machineBlob(which string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		mac, err := pathMAC(r)
		if err != nil {
			s.writeErr(w, err)
			return
		}
		var blob string
		err = s.opt.Store.View(r.Context(), func(tx *store.Tx) error {
			m, err := tx.Machine(mac)
			if errors.Is(err, store.ErrNotFound) {
				return errorf(http.StatusNotFound, "no machine %s", mac)
			}
			if err != nil {
				return err
			}
			blob = map[string]string{"lshw": m.LSHW, "disks": m.KnownDisks}[which]
			if blob == "" {
				return errorf(http.StatusNotFound, "%s has no %s yet", mac, which)
			}
			return nil
		})
		if err != nil {
			s.writeErr(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%s.json"`, wire.HexHyp(mac), which))
		io.WriteString(w, blob)
	}
}

// listCycles answers GET /machines/<mac>/cycles[?limit=N]: the timeline of
// the latest flashes and inventories, newest first.
func (s *Server) listCycles(w http.ResponseWriter, r *http.Request) {
	mac, err := pathMAC(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	limit, err := intParam(r, "limit", 20, 1, 500)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	out := []*wire.Cycle{}
	err = s.opt.Store.View(r.Context(), func(tx *store.Tx) error {
		cs, err := tx.Cycles(mac, 0, limit)
		for _, c := range cs {
			out = append(out, wireCycle(c))
		}
		return err
	})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getCycle(w http.ResponseWriter, r *http.Request) {
	mac, err := pathMAC(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.writeErr(w, errorf(http.StatusBadRequest, "plan id %q is not a number", r.PathValue("id")))
		return
	}
	var out *wire.Cycle
	err = s.opt.Store.View(r.Context(), func(tx *store.Tx) error {
		c, err := tx.Cycle(id)
		if errors.Is(err, store.ErrNotFound) || (err == nil && c.MAC != mac) {
			return errorf(http.StatusNotFound, "no plan %d for %s", id, mac)
		}
		out = wireCycle(c)
		return err
	})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// reflash answers POST /machines/<mac>/reflash: arm a flash cycle now
// (superseding an open one, releasing a quarantine) and, when the machine has
// a power driver, power-cycle it. This is the per-job trigger, and the route
// a CI system reports a bad machine on (with a reason).
func (s *Server) reflash(w http.ResponseWriter, r *http.Request) {
	mac, err := pathMAC(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	var req wire.Reflash
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		s.writeErr(w, errorf(http.StatusRequestEntityTooLarge, "the body is too large"))
		return
	}
	if len(body) > 0 {
		if err := strictJSON(body, &req); err != nil {
			s.writeErr(w, err)
			return
		}
	}
	images, err := s.images.byRef(r.Context())
	if err != nil {
		s.writeErr(w, err)
		return
	}
	now, who, ip := s.now(), actor(r), clientIP(r)
	var c *store.Cycle
	var power string
	err = s.opt.Store.Update(r.Context(), func(tx *store.Tx) error {
		m, err := tx.Machine(mac)
		if errors.Is(err, store.ErrNotFound) {
			return errorf(http.StatusNotFound, "no machine %s", mac)
		}
		if err != nil {
			return err
		}
		switch {
		case !wire.FlashMode(m.BootMode):
			return errorf(http.StatusConflict, "%s is in mode %s, which does not flash: bty fleet set %s --mode bty-flash-once (or -always)", mac, m.BootMode, mac)
		case m.ImageRef == "" || m.TargetDiskSerial == "":
			return errorf(http.StatusConflict, "%s has no image or target disk: bty fleet set %s --image NAME --disk serial:S", mac, mac)
		}
		if _, ok := images[m.ImageRef]; !ok {
			return errorf(http.StatusConflict, "%s's image %s is in no catalog of this server", mac, m.ImageRef[:12])
		}
		if !m.QuarantinedAt.IsZero() {
			m.QuarantinedAt, m.QuarantineReason, m.UpdatedAt = time.Time{}, "", now
			if _, err := tx.PutMachine(m); err != nil {
				return err
			}
			if err := event(tx, now, "machine.released", mac, who, ip, mac+" released from quarantine", nil); err != nil {
				return err
			}
		}
		old, err := latestCycle(tx, mac)
		if err != nil {
			return err
		}
		if isOpen(old) {
			if err := supersede(tx, old, "a reflash was requested", who, ip, now); err != nil {
				return err
			}
		}
		if c, err = newCycle(tx, m, wire.KindFlash, "reflash", 1, wire.CycleArmed, now); err != nil {
			return err
		}
		power = ""
		if m.Power != "" && (req.Power == nil || *req.Power) {
			power = m.Power
		}
		if isWOL(power) {
			tx.Notify(topicWake, s.id+" "+mac)
		}
		summary := fmt.Sprintf("plan %d armed: reflash requested", c.ID)
		if req.Reason != "" {
			summary += ": " + req.Reason
		}
		return event(tx, now, "machine.reflash_requested", mac, who, ip, summary, map[string]any{"plan_id": c.ID, "reason": req.Reason, "power": power != ""})
	})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	if power != "" {
		why := "reflash"
		if req.Reason != "" {
			why += ": " + req.Reason
		}
		s.powerCycle(mac, power, why)
	}
	writeJSON(w, http.StatusAccepted, wireCycle(c))
}

func intParam(r *http.Request, name string, def, lo, hi int64) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return int(def), nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, errorf(http.StatusUnprocessableEntity, "%s=%q: give a number from %d to %d", name, v, lo, hi)
	}
	return int(n), nil
}
