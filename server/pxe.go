package server

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"bty/server/store"
	"bty/units"
	"bty/wire"
)

// The machine-facing routes: open, as firmware cannot authenticate; a
// cycle's posts need its agent token once the plan handed it out.

// repeatWindow: a GET /pxe/<mac> without a boot id that comes this soon
// after the previous offer, whose live environment has not fetched its kernel
// since, is taken as iPXE retrying the same boot. A machine that really boots
// again that fast (POST plus firmware plus a disk boot take longer) gets the
// same script once more, which is the safe side: no flash instead of a disk
// boot.
const repeatWindow = 30 * time.Second

var bootIDRE = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)

func randomID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Server) now() time.Time { return s.opt.Now().UTC() }

func writeText(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, body)
}

func (s *Server) bootstrap(w http.ResponseWriter, r *http.Request) {
	writeText(w, bootstrapScript(base(r), randomID()))
}

// pxe answers GET /pxe/<mac>[?boot=ID] with the machine's script for this
// boot: decided once per boot id and then repeated.
func (s *Server) pxe(w http.ResponseWriter, r *http.Request) {
	mac, err := pathMAC(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	boot := r.URL.Query().Get("boot")
	if !bootIDRE.MatchString(boot) {
		boot = ""
	}
	images, err := s.images.byRef(r.Context())
	if err != nil {
		s.writeErr(w, err)
		return
	}
	ip, now := clientIP(r), s.now()
	var script string
	err = s.opt.Store.Update(r.Context(), func(tx *store.Tx) error {
		m, err := touch(tx, mac, ip, now)
		if err != nil {
			return err
		}
		id := boot
		prev, err := tx.Offer(mac, boot)
		switch {
		case err == nil && boot != "":
			script = prev.Script
			_, err := tx.PutMachine(m)
			return err
		case err == nil && s.isRetry(tx, prev, now):
			script = prev.Script
			if _, err := tx.PutMachine(m); err != nil {
				return err
			}
			return event(tx, now, "netboot.pxe.repeated", mac, "pxe-client", ip, "the same script again (an iPXE retry without a boot id)", map[string]any{"offer_kind": prev.Kind})
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return err
		}
		if id == "" {
			id = "auto-" + randomID()
		}
		c, err := latestCycle(tx, mac)
		if err != nil {
			return err
		}
		o, err := s.decideOffer(tx, m, c, images, base(r), ip, now)
		if err != nil {
			return err
		}
		script = o.script
		if o.cycle != nil {
			if err := stampDHCP(tx, o.cycle, now); err != nil {
				return err
			}
		}
		rec := &store.Offer{MAC: mac, BootID: id, Kind: o.kind, Script: o.script, CreatedAt: now}
		details := map[string]any{"boot_mode": m.BootMode, "offer_kind": o.kind, "boot_id": id}
		for k, v := range o.details {
			details[k] = v
		}
		if o.cycle != nil {
			rec.CycleID = o.cycle.ID
			details["plan_id"] = o.cycle.ID
		}
		if err := tx.AddOffer(rec); err != nil {
			return err
		}
		if _, err := tx.PutMachine(m); err != nil {
			return err
		}
		return event(tx, now, "netboot.pxe.offered", mac, "pxe-client", ip, mac+": "+o.kind, details)
	})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeText(w, script)
}

// isRetry reports whether an offer made without a boot id is being asked for
// again by the same boot (see repeatWindow).
func (s *Server) isRetry(tx *store.Tx, prev *store.Offer, now time.Time) bool {
	if !strings.HasPrefix(prev.BootID, "auto-") || now.Sub(prev.CreatedAt) >= repeatWindow {
		return false
	}
	if prev.CycleID == 0 {
		return true
	}
	c, err := tx.Cycle(prev.CycleID)
	return err == nil && c.State == wire.CycleOffered
}

// plan answers GET /pxe/<mac>/plan.
func (s *Server) plan(w http.ResponseWriter, r *http.Request) {
	mac, err := pathMAC(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	images, err := s.images.byRef(r.Context())
	if err != nil {
		s.writeErr(w, err)
		return
	}
	ip, now := clientIP(r), s.now()
	var plan wire.Plan
	err = s.opt.Store.Update(r.Context(), func(tx *store.Tx) error {
		m, err := touch(tx, mac, ip, now)
		if err != nil {
			return err
		}
		c, err := latestCycle(tx, mac)
		if err != nil {
			return err
		}
		var cy *store.Cycle
		plan, cy, err = s.decidePlan(tx, m, c, images, base(r), now)
		if err != nil {
			return err
		}
		if _, err := tx.PutMachine(m); err != nil {
			return err
		}
		logged := plan
		logged.AgentToken = ""
		details := map[string]any{"plan": logged, "boot_mode": m.BootMode, "offer_kind": "plan:" + string(plan.Mode)}
		if cy != nil {
			details["token_handed_out"] = plan.AgentToken != ""
		}
		return event(tx, now, "netboot.pxe.plan", mac, "pxe-client", ip, fmt.Sprintf("%s: plan %s", mac, plan.Mode), details)
	})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, plan)
}

// checkAgent refuses a post for cycle c unless it carries c's agent token,
// once that was handed out: 401 without one, 403 with another.
func checkAgent(r *http.Request, c *store.Cycle) error {
	if c == nil || c.TokenHash == "" {
		return nil
	}
	tok := bearer(r)
	if tok == "" {
		return errorf(http.StatusUnauthorized, "plan %d's agent token is missing: send the plan's agent_token as Authorization: Bearer", c.ID)
	}
	if subtle.ConstantTimeCompare([]byte(hashToken(tok)), []byte(c.TokenHash)) != 1 {
		return errorf(http.StatusForbidden, "the agent token is not plan %d's", c.ID)
	}
	return nil
}

// known returns the machine a post is for; an unknown MAC is a 404.
func known(tx *store.Tx, mac string) (*store.Machine, error) {
	m, err := tx.Machine(mac)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errorf(http.StatusNotFound, "no machine record for %s", mac)
	}
	return m, err
}

// refused logs a refused post after its transaction rolled back, and returns
// err: an unknown MAC (pxe.client.orphan, bty-web's), a missing or wrong
// agent token, a stale or replayed status (pxe.<route>.refused).
func (s *Server) refused(ctx context.Context, mac, ip, route string, now time.Time, err error) error {
	var he *httpError
	if !errors.As(err, &he) || he.Code == http.StatusUnprocessableEntity {
		return err
	}
	kind, summary := "pxe."+route+".refused", "refused: "+he.Msg
	if he.Code == http.StatusNotFound && strings.HasPrefix(he.Msg, "no machine record") {
		kind, summary = "pxe.client.orphan", "POST "+route+" from a MAC this server does not know"
	}
	s.opt.Store.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
		return event(tx, now, kind, mac, "pxe-client", ip, summary, map[string]any{"code": he.Code, "detail": he.Msg})
	})
	return err
}

// status answers POST /pxe/<mac>/status.
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	mac, err := pathMAC(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	var st wire.Status
	if err := decode(w, r, 64<<10, &st); err != nil {
		s.writeErr(w, err)
		return
	}
	if err := st.Validate(); err != nil {
		s.writeErr(w, errorf(http.StatusUnprocessableEntity, "%v", err))
		return
	}
	ip, now := clientIP(r), s.now()
	var retry *store.Cycle
	var power string
	err = s.opt.Store.Update(r.Context(), func(tx *store.Tx) error {
		retry = nil
		m, err := known(tx, mac)
		if err != nil {
			return err
		}
		var c *store.Cycle
		if st.PlanID > 0 {
			if c, err = tx.Cycle(st.PlanID); errors.Is(err, store.ErrNotFound) || (err == nil && c.MAC != mac) {
				return errorf(http.StatusConflict, "plan %d is not %s's", st.PlanID, mac)
			}
		} else {
			c, err = latestCycle(tx, mac)
		}
		if err != nil {
			return err
		}
		if c == nil || c.Kind != wire.KindFlash {
			return errorf(http.StatusConflict, "%s has no flash plan to end", mac)
		}
		if err := checkAgent(r, c); err != nil {
			return err
		}
		if !isOpen(c) {
			if c.State == st.Status {
				return nil // the same status again: the answer to the first was lost
			}
			return errorf(http.StatusConflict, "plan %d already ended (%s): a late or replayed status cannot change it", c.ID, c.State)
		}
		if c.State != wire.CyclePlanned {
			return errorf(http.StatusConflict, "plan %d was not handed out yet: no status can end it", c.ID)
		}
		m.LastSeenAt, m.LastSeenIP, m.UpdatedAt = now, ip, now
		if st.Status == wire.StatusFailed {
			f, err := s.failAttempt(tx, m, c, st.Reason, string(st.Class), "pxe-client", ip, now)
			if err != nil {
				return err
			}
			retry, power = f.retry, m.Power
			_, err = tx.PutMachine(m)
			return err
		}
		sum := st.SHA256
		if sum == "" {
			sum = c.ImageSHA256 // an older client verified the plan's digest
		}
		c.State, c.EndedAt, c.SHA256 = wire.CycleDone, now, sum
		if st.BytesWritten > 0 {
			c.BytesWritten = st.BytesWritten
		}
		c.BytesFetched = st.BytesFetched
		if err := tx.PutCycle(c); err != nil {
			return err
		}
		m.LastFlashedAt = now
		m.DiskRef, m.DiskSHA256, m.DiskSerial, m.DiskPlanID, m.DiskAt = c.ImageRef, sum, c.TargetDiskSerial, c.ID, now
		if _, err := tx.PutMachine(m); err != nil {
			return err
		}
		s.countEnded(tx, c)
		took := ""
		if !c.PlannedAt.IsZero() {
			took = " in " + now.Sub(c.PlannedAt).Round(time.Second).String()
		}
		details := map[string]any{"plan_id": c.ID, "sha256": sum, "image_ref": c.ImageRef, "bytes_written": c.BytesWritten}
		if c.BytesFetched != nil {
			details["bytes_fetched"] = *c.BytesFetched
			took += fmt.Sprintf("; delta: %s fetched, %s written", units.Bytes(*c.BytesFetched), units.Bytes(c.BytesWritten))
		}
		return event(tx, now, "machine.flashed", mac, "pxe-client", ip, fmt.Sprintf("plan %d done: %s on serial %s%s", c.ID, c.ImageName, c.TargetDiskSerial, took), details)
	})
	if err != nil {
		s.writeErr(w, s.refused(r.Context(), mac, ip, "status", now, err))
		return
	}
	if retry != nil && power != "" {
		s.powerCycle(mac, power, fmt.Sprintf("retry: plan %d", retry.ID))
	}
	if err := s.StepRollouts(r.Context()); err != nil {
		s.logf("rollouts: %v", err) // the next tick steps them
	}
	w.WriteHeader(http.StatusNoContent)
}

// inventory answers POST /pxe/<mac>/inventory.
func (s *Server) inventory(w http.ResponseWriter, r *http.Request) {
	mac, err := pathMAC(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	var inv wire.Inventory
	if err := decode(w, r, 16<<20, &inv); err != nil {
		s.writeErr(w, err)
		return
	}
	if err := inv.Validate(); err != nil {
		s.writeErr(w, errorf(http.StatusUnprocessableEntity, "%v", err))
		return
	}
	if inv.Disks == nil {
		inv.Disks = []wire.InventoryDisk{}
	}
	disks, _ := json.Marshal(inv.Disks)
	ip, now := clientIP(r), s.now()
	err = s.opt.Store.Update(r.Context(), func(tx *store.Tx) error {
		m, err := known(tx, mac)
		if err != nil {
			return err
		}
		c, err := latestCycle(tx, mac)
		if err != nil {
			return err
		}
		if isOpen(c) {
			if err := checkAgent(r, c); err != nil {
				return err
			}
		}
		m.KnownDisks, m.KnownDisksAt = string(disks), now
		lshw := len(inv.LSHW) > 0 && string(inv.LSHW) != "null"
		if lshw && len(inv.LSHW) <= wire.MaxLSHWBytes {
			m.LSHW, m.LSHWAt = string(inv.LSHW), now
		}
		m.LastSeenAt, m.LastSeenIP, m.UpdatedAt = now, ip, now
		if _, err := tx.PutMachine(m); err != nil {
			return err
		}
		var serials []string
		for _, d := range inv.Disks {
			if d.Serial != "" {
				serials = append(serials, d.Serial)
			}
		}
		details := map[string]any{"count": len(inv.Disks), "serials": serials, "lshw": lshw}
		if isOpen(c) && c.Kind == wire.KindInventory && c.State == wire.CyclePlanned {
			c.State, c.EndedAt = wire.CycleDone, now
			if err := tx.PutCycle(c); err != nil {
				return err
			}
			s.countEnded(tx, c)
			details["plan_id"] = c.ID
		}
		return event(tx, now, "machine.inventory", mac, "pxe-client", ip, fmt.Sprintf("%d disks reported", len(inv.Disks)), details)
	})
	if err != nil {
		s.writeErr(w, s.refused(r.Context(), mac, ip, "inventory", now, err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// progress answers POST /pxe/<mac>/progress: where the write is (the
// client posts at most once a second; the web UI shows it live).
func (s *Server) progress(w http.ResponseWriter, r *http.Request) {
	mac, err := pathMAC(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	var p wire.Progress
	if err := decode(w, r, 64<<10, &p); err != nil {
		s.writeErr(w, err)
		return
	}
	if err := p.Validate(); err != nil {
		s.writeErr(w, errorf(http.StatusUnprocessableEntity, "%v", err))
		return
	}
	ip, now := clientIP(r), s.now()
	err = s.opt.Store.Update(r.Context(), func(tx *store.Tx) error {
		c, err := tx.Cycle(p.PlanID)
		if errors.Is(err, store.ErrNotFound) || (err == nil && c.MAC != mac) {
			return errorf(http.StatusNotFound, "plan %d is not %s's", p.PlanID, mac)
		}
		if err != nil {
			return err
		}
		if err := checkAgent(r, c); err != nil {
			return err
		}
		if c.State != wire.CyclePlanned {
			return errorf(http.StatusConflict, "plan %d is %s, not under way", c.ID, c.State)
		}
		first := c.WriteStartedAt.IsZero()
		if first {
			c.WriteStartedAt = now
		}
		c.BytesWritten, c.BytesTotal = p.BytesWritten, p.BytesTotal
		if err := tx.PutCycle(c); err != nil {
			return err
		}
		if err := tx.SetProgress(c.ID, p.Phase, now); err != nil {
			return err
		}
		if first {
			return event(tx, now, "machine.flash_started", mac, "pxe-client", ip, fmt.Sprintf("plan %d: writing %s", c.ID, c.ImageName), map[string]any{"plan_id": c.ID, "bytes_total": p.BytesTotal})
		}
		return nil
	})
	if err != nil {
		s.writeErr(w, s.refused(r.Context(), mac, ip, "progress", now, err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// bootFile answers GET|HEAD /boot/<name>[?mac=M]: a file of the live
// environment. ?mac= marks the machine's offered cycle booted first, even if
// the file then is missing (bty-web's arming).
func (s *Server) bootFile(w http.ResponseWriter, r *http.Request) {
	if m := r.URL.Query().Get("mac"); m != "" {
		if mac, err := wire.NormalizeMAC(m); err == nil {
			if err := s.markBooted(r.Context(), mac, clientIP(r)); err != nil {
				s.logf("mark %s booted: %v", mac, err)
			}
		}
	}
	name := r.PathValue("name")
	if strings.ContainsAny(name, "/\\\x00") || name == ".." {
		s.writeErr(w, errorf(http.StatusBadRequest, "bad file name %q", name))
		return
	}
	if strings.HasPrefix(name, ".") {
		s.writeErr(w, errorf(http.StatusNotFound, "no such file: %s", name))
		return
	}
	f, err := s.openBootFile(name)
	if err != nil {
		s.writeErr(w, errorf(http.StatusNotFound, "no such file: %s", name))
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		s.writeErr(w, errorf(http.StatusNotFound, "no such file: %s", name))
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	http.ServeContent(w, r, name, fi.ModTime(), f)
}

// markBooted notes that mac fetched the live environment: its offered cycle
// is booted (event netboot.flasher.armed, bty-web's name).
func (s *Server) markBooted(ctx context.Context, mac, ip string) error {
	now := s.now()
	return s.opt.Store.Update(ctx, func(tx *store.Tx) error {
		m, err := tx.Machine(mac)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		m.LastSeenAt, m.LastSeenIP = now, ip
		if _, err := tx.PutMachine(m); err != nil {
			return err
		}
		c, err := latestCycle(tx, mac)
		if err != nil || c == nil || c.State != wire.CycleOffered {
			return err
		}
		c.State, c.BootedAt = wire.CycleBooted, now
		if err := tx.PutCycle(c); err != nil {
			return err
		}
		return event(tx, now, "netboot.flasher.armed", mac, "pxe-client", ip, fmt.Sprintf("plan %d: the live environment is booting", c.ID), map[string]any{"plan_id": c.ID})
	})
}
