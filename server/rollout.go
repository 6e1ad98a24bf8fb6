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

	"bty/server/store"
	"bty/wire"
)

// Staged rollouts: an image promoted to the machines of a label, at most
// max_parallel flashing at a time, stopped when more than max_failures
// have failed for good.
//
//	POST /rollouts {label, image, max_parallel, max_failures}
//	  the label's machines become members, waiting (a machine that does not
//	  flash, or holds the image already, is skipped or done at once)
//	step (in one transaction, after the rollout's row is locked):
//	  flashing -> done    the machine's disk holds the image (a flash after its admission)
//	  flashing -> failed  the machine is quarantined (its retries spent)
//	  more failed than max_failures -> stopped; nobody waiting or flashing -> done
//	  running, a slot free: a waiting machine with a power driver is
//	    admitted (bound to the image, a flash armed) and power-cycled
//	a waiting machine that boots (decideOffer): admitted when a slot is free
//	  and the rollout runs, else offered its disk
//	pause, resume, cancel: POST /rollouts/ID/{pause,resume,cancel}
//
// "Admitted" is the only way a member is bound to the image, and every
// admission counts the flashing members after the lock, so the limit holds
// with any number of servers on one database. A cancelled rollout's waiting
// machines keep the image they had.

// rolloutTick is how often the server steps the rollouts that have not
// ended: what another server recorded, and machines whose power driver is
// the way to their turn.
const rolloutTick = 5 * time.Second

// powerAction is a power cycle to run after a transaction commits.
type powerAction struct{ mac, driver, why string }

func (s *Server) rolloutRoutes(m *http.ServeMux) {
	m.HandleFunc("POST /rollouts", s.admin(s.startRollout))
	m.HandleFunc("GET /rollouts", s.admin(s.listRollouts))
	m.HandleFunc("GET /rollouts/{id}", s.admin(s.getRollout))
	m.HandleFunc("POST /rollouts/{id}/{action}", s.admin(s.rolloutAction))
}

// rolloutEvent logs an event about rollout r (subject_kind rollout, its id).
func rolloutEvent(tx *store.Tx, now time.Time, r *store.Rollout, kind, actor, ip, summary string, details map[string]any) error {
	if details == nil {
		details = map[string]any{}
	}
	details["rollout"], details["label"], details["image_ref"] = r.ID, r.Label, r.ImageRef
	d, err := json.Marshal(details)
	if err != nil {
		return err
	}
	return tx.AddEvent(&store.Event{TS: now, Kind: kind, SubjectKind: "rollout", SubjectID: strconv.FormatInt(r.ID, 10), Actor: actor, SourceIP: ip, Summary: summary, Details: string(d)})
}

// startRollout answers POST /rollouts.
func (s *Server) startRollout(w http.ResponseWriter, r *http.Request) {
	var req wire.RolloutStart
	if err := decode(w, r, 4<<10, &req); err != nil {
		s.writeErr(w, err)
		return
	}
	if err := req.Validate(); err != nil {
		s.writeErr(w, errorf(http.StatusUnprocessableEntity, "%v", err))
		return
	}
	images, err := s.images.byRef(r.Context())
	if err != nil {
		s.writeErr(w, err)
		return
	}
	img, ok := images[req.Image]
	if !ok {
		s.writeErr(w, errorf(http.StatusUnprocessableEntity, "no image of this server's catalogs has ref %s", req.Image))
		return
	}
	now, who, ip := s.now(), actor(r), clientIP(r)
	var ro *store.Rollout
	var power []powerAction
	err = s.opt.Store.Update(r.Context(), func(tx *store.Tx) error {
		active, err := tx.Rollouts(true, 1000)
		if err != nil {
			return err
		}
		for _, o := range active {
			if o.Label == req.Label && o.State != wire.RolloutCancelled {
				return errorf(http.StatusConflict, "rollout %d of label %s is %s: cancel it first (bty fleet rollout cancel %d)", o.ID, o.Label, o.State, o.ID)
			}
		}
		ms, err := tx.Machines(req.Label)
		if err != nil {
			return err
		}
		if len(ms) == 0 {
			return errorf(http.StatusUnprocessableEntity, "no machine has the label %q (bty fleet ls shows the labels)", req.Label)
		}
		ro = &store.Rollout{Label: req.Label, ImageRef: req.Image, ImageName: img.Name, MaxParallel: req.MaxParallel, MaxFailures: req.MaxFailures,
			State: wire.RolloutRunning, Actor: who, CreatedAt: now, UpdatedAt: now}
		if err := tx.InsertRollout(ro); err != nil {
			return err
		}
		for i, m := range ms {
			if _, other, err := tx.ActiveMembership(m.MAC); err == nil && other.State != wire.RolloutCancelled {
				return errorf(http.StatusConflict, "%s is in rollout %d (label %s) already: cancel that one first", m.MAC, other.ID, other.Label)
			} else if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			mem := &store.RolloutMachine{RolloutID: ro.ID, MAC: m.MAC, Seq: i, State: wire.MemberWaiting}
			switch {
			case !wire.FlashMode(m.BootMode) || m.TargetDiskSerial == "":
				// Nothing to flash: bound at once, as bty fleet set does.
				mem.State, mem.Reason, mem.EndedAt = wire.MemberSkipped, "mode "+m.BootMode+" without a flash to do", now
				if m.TargetDiskSerial == "" && wire.FlashMode(m.BootMode) {
					mem.Reason = "no target disk serial"
				}
			case holds(m, req.Image, img.SHA256):
				mem.State, mem.Reason, mem.EndedAt = wire.MemberDone, "its disk holds the image already", now
			}
			if mem.State != wire.MemberWaiting && m.ImageRef != req.Image {
				m.ImageRef, m.UpdatedAt = req.Image, now
				if _, err := tx.PutMachine(m); err != nil {
					return err
				}
			}
			if err := tx.AddRolloutMachine(mem); err != nil {
				return err
			}
		}
		err = rolloutEvent(tx, now, ro, "rollout.started", who, ip, fmt.Sprintf("rollout %d: %s to label %s (%d machines), at most %d at a time, stop after %d failures",
			ro.ID, img.Name, ro.Label, len(ms), ro.MaxParallel, ro.MaxFailures), nil)
		if err != nil {
			return err
		}
		power, _, err = s.stepRollout(tx, ro.ID, "", now)
		return err
	})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	s.runPower(power)
	s.prewarm(req.Image)
	s.answerRollout(w, r, http.StatusCreated, ro.ID)
}

// holds reports whether m's disk holds the image ref (with digest sum).
func holds(m *store.Machine, ref, sum string) bool {
	bound := *m
	bound.ImageRef = ref
	return diskCurrent(&bound, sum)
}

// runPower runs the power cycles a committed transaction decided.
func (s *Server) runPower(actions []powerAction) {
	for _, a := range actions {
		s.powerCycle(a.mac, a.driver, a.why)
	}
}

// stepRollout brings rollout id up to date (see the top of this file) and
// returns the power cycles of the machines it admitted. With booting set,
// that waiting machine is booting: it alone may be admitted, without a power
// cycle, and admitted says whether it was.
func (s *Server) stepRollout(tx *store.Tx, id int64, booting string, now time.Time) (power []powerAction, admitted bool, err error) {
	ro, err := tx.LockRollout(id, now)
	if err != nil || !ro.EndedAt.IsZero() {
		return nil, false, err
	}
	members, err := tx.RolloutMachines(id)
	if err != nil {
		return nil, false, err
	}
	count := map[string]int{}
	for _, mem := range members {
		if mem.State == wire.MemberFlashing {
			if err := s.syncMember(tx, ro, mem, now); err != nil {
				return nil, false, err
			}
		}
		count[mem.State]++
	}
	if count[wire.MemberFailed] > ro.MaxFailures && (ro.State == wire.RolloutRunning || ro.State == wire.RolloutPaused) {
		ro.State, ro.Reason, ro.UpdatedAt = wire.RolloutStopped, fmt.Sprintf("%d machines failed, more than max_failures %d", count[wire.MemberFailed], ro.MaxFailures), now
		if err := tx.PutRollout(ro); err != nil {
			return nil, false, err
		}
		err := rolloutEvent(tx, now, ro, "rollout.stopped", "bty-serve", "", fmt.Sprintf("rollout %d stopped: %s (bty fleet rollout resume %d goes on)", ro.ID, ro.Reason, ro.ID),
			map[string]any{"failed": count[wire.MemberFailed]})
		if err != nil {
			return nil, false, err
		}
	}
	for _, mem := range members {
		if ro.State != wire.RolloutRunning || count[wire.MemberFlashing] >= ro.MaxParallel {
			break
		}
		if mem.State != wire.MemberWaiting || (booting != "" && mem.MAC != booting) {
			continue
		}
		m, err := tx.Machine(mem.MAC)
		if errors.Is(err, store.ErrNotFound) {
			mem.State, mem.Reason, mem.EndedAt = wire.MemberSkipped, "deleted", now
			count[wire.MemberWaiting]--
			count[wire.MemberSkipped]++
			if err := tx.PutRolloutMachine(mem); err != nil {
				return nil, false, err
			}
			continue
		}
		if err != nil {
			return nil, false, err
		}
		if booting == "" && m.Power == "" {
			continue // admitted when it boots
		}
		a, err := s.admit(tx, ro, mem, m, booting == "", now)
		if err != nil {
			return nil, false, err
		}
		if a != nil {
			power = append(power, *a)
		}
		admitted = admitted || mem.MAC == booting
		count[wire.MemberWaiting]--
		count[wire.MemberFlashing]++
	}
	if count[wire.MemberWaiting] == 0 && count[wire.MemberFlashing] == 0 {
		if ro.State != wire.RolloutCancelled {
			ro.State = wire.RolloutDone
		}
		ro.EndedAt, ro.UpdatedAt = now, now
		if err := tx.PutRollout(ro); err != nil {
			return nil, false, err
		}
		summary := fmt.Sprintf("rollout %d of %s to label %s ended %s: %d done, %d failed, %d skipped, %d cancelled", ro.ID, ro.ImageName, ro.Label, ro.State,
			count[wire.MemberDone], count[wire.MemberFailed], count[wire.MemberSkipped], count[wire.MemberCancelled])
		if err := rolloutEvent(tx, now, ro, "rollout.ended", "bty-serve", "", summary, map[string]any{"state": ro.State, "counts": count}); err != nil {
			return nil, false, err
		}
	}
	return power, admitted, nil
}

// syncMember ends a flashing member whose flash has ended: done when the
// machine's disk holds the image from a flash after its admission, failed
// when the machine was quarantined since, skipped when someone bound it to
// another image or deleted it.
func (s *Server) syncMember(tx *store.Tx, ro *store.Rollout, mem *store.RolloutMachine, now time.Time) error {
	m, err := tx.Machine(mem.MAC)
	switch {
	case errors.Is(err, store.ErrNotFound):
		mem.State, mem.Reason = wire.MemberSkipped, "deleted"
	case err != nil:
		return err
	case m.DiskRef == ro.ImageRef && m.DiskPlanID > mem.AfterCycle:
		mem.State = wire.MemberDone
	case !m.QuarantinedAt.IsZero():
		c, err := latestCycle(tx, m.MAC)
		if err != nil {
			return err
		}
		if c == nil || c.ID <= mem.AfterCycle {
			return nil // quarantined before; reflash releases it
		}
		mem.State, mem.Reason = wire.MemberFailed, m.QuarantineReason
	case m.ImageRef != ro.ImageRef:
		mem.State, mem.Reason = wire.MemberSkipped, "bound to another image meanwhile"
	default:
		return nil
	}
	mem.EndedAt = now
	if err := tx.PutRolloutMachine(mem); err != nil {
		return err
	}
	kind, summary := "rollout.machine_"+mem.State, fmt.Sprintf("rollout %d: %s %s", ro.ID, mem.MAC, mem.State)
	if mem.Reason != "" {
		summary += ": " + mem.Reason
	}
	return event(tx, now, kind, mem.MAC, "bty-serve", "", summary, map[string]any{"rollout": ro.ID, "image_ref": ro.ImageRef})
}

// admit moves a waiting member to flashing: the machine is bound to the
// image and, with arm, a flash is armed (superseding an open cycle) and its
// power driver named for the caller to run; without, the machine is booting
// and the caller offers it the flash. The caller writes nothing more of m
// when arm is set; otherwise it writes m.
func (s *Server) admit(tx *store.Tx, ro *store.Rollout, mem *store.RolloutMachine, m *store.Machine, arm bool, now time.Time) (*powerAction, error) {
	c, err := latestCycle(tx, m.MAC)
	if err != nil {
		return nil, err
	}
	if c != nil {
		mem.AfterCycle = c.ID
	}
	mem.State, mem.AdmittedAt = wire.MemberFlashing, now
	if err := tx.PutRolloutMachine(mem); err != nil {
		return nil, err
	}
	m.ImageRef, m.UpdatedAt = ro.ImageRef, now
	err = event(tx, now, "rollout.admitted", m.MAC, "bty-serve", "", fmt.Sprintf("rollout %d: %s's turn: %s", ro.ID, m.MAC, ro.ImageName),
		map[string]any{"rollout": ro.ID, "image_ref": ro.ImageRef})
	if err != nil || !arm {
		return nil, err
	}
	if _, err := tx.PutMachine(m); err != nil {
		return nil, err
	}
	if isOpen(c) {
		if err := supersede(tx, c, fmt.Sprintf("rollout %d", ro.ID), "bty-serve", "", now); err != nil {
			return nil, err
		}
	}
	cy, err := newCycle(tx, m, wire.KindFlash, "rollout", 1, wire.CycleArmed, now)
	if err != nil {
		return nil, err
	}
	return &powerAction{m.MAC, m.Power, fmt.Sprintf("rollout %d: plan %d", ro.ID, cy.ID)}, nil
}

// leaveRollout takes machine m, just bound by hand to another image, out of
// the rollout it waits in: the binding someone chose wins over the
// rollout's (a flashing member bound elsewhere is skipped at the next step).
func leaveRollout(tx *store.Tx, m *store.Machine, who string, now time.Time) error {
	mem, ro, err := tx.ActiveMembership(m.MAC)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil || mem.State != wire.MemberWaiting || m.ImageRef == ro.ImageRef {
		return err
	}
	mem.State, mem.Reason, mem.EndedAt = wire.MemberSkipped, "bound to another image by "+who, now
	if err := tx.PutRolloutMachine(mem); err != nil {
		return err
	}
	return event(tx, now, "rollout.machine_skipped", m.MAC, who, "", fmt.Sprintf("rollout %d: %s skipped: %s", ro.ID, m.MAC, mem.Reason), map[string]any{"rollout": ro.ID})
}

// rolloutGate decides, for a boot of flash-mode machine m with no armed
// cycle, whether it waits for its turn in a rollout (it boots its disk):
// a waiting member is admitted now when its rollout runs and has a slot,
// and bound to the image (the caller writes m); else it waits.
func (s *Server) rolloutGate(tx *store.Tx, m *store.Machine, now time.Time) (wait bool, rollout int64, err error) {
	mem, ro, err := tx.ActiveMembership(m.MAC)
	if errors.Is(err, store.ErrNotFound) {
		return false, 0, nil
	}
	if err != nil || mem.State != wire.MemberWaiting {
		return false, 0, err
	}
	if ro.State != wire.RolloutRunning {
		return true, ro.ID, nil
	}
	_, admitted, err := s.stepRollout(tx, ro.ID, m.MAC, now)
	if err != nil || !admitted {
		return err == nil, ro.ID, err
	}
	m.ImageRef, m.UpdatedAt = ro.ImageRef, now
	return false, ro.ID, nil
}

// StepRollouts steps every rollout that has not ended, in one transaction,
// and runs the power cycles of the machines it admitted.
func (s *Server) StepRollouts(ctx context.Context) error {
	var ids []int64
	err := s.opt.Store.View(ctx, func(tx *store.Tx) error {
		ids = nil
		ros, err := tx.Rollouts(true, 1000)
		for _, ro := range ros {
			ids = append(ids, ro.ID)
		}
		return err
	})
	if err != nil || len(ids) == 0 {
		return err
	}
	var power []powerAction
	now := s.now()
	err = s.opt.Store.Update(ctx, func(tx *store.Tx) error {
		power = nil
		for _, id := range ids {
			p, _, err := s.stepRollout(tx, id, "", now)
			if err != nil {
				return err
			}
			power = append(power, p...)
		}
		return nil
	})
	if err == nil {
		s.runPower(power)
	}
	return err
}

// rolloutOut reads a rollout in its wire form, with its machines when all.
func rolloutOut(tx *store.Tx, ro *store.Rollout, all bool) (wire.Rollout, error) {
	out := wire.Rollout{ID: ro.ID, Label: ro.Label, ImageRef: ro.ImageRef, ImageName: ro.ImageName, MaxParallel: ro.MaxParallel,
		MaxFailures: ro.MaxFailures, State: ro.State, Reason: ro.Reason, Actor: ro.Actor, CreatedAt: ro.CreatedAt, UpdatedAt: ro.UpdatedAt,
		EndedAt: tp(ro.EndedAt), Counts: map[string]int{}}
	members, err := tx.RolloutMachines(ro.ID)
	for _, m := range members {
		out.Counts[m.State]++
		if all {
			out.Machines = append(out.Machines, wire.RolloutMachine{MAC: m.MAC, State: m.State, Reason: m.Reason, AdmittedAt: tp(m.AdmittedAt), EndedAt: tp(m.EndedAt)})
		}
	}
	return out, err
}

func rolloutID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return 0, errorf(http.StatusNotFound, "no rollout %q", r.PathValue("id"))
	}
	return id, nil
}

// answerRollout answers with rollout id and its machines.
func (s *Server) answerRollout(w http.ResponseWriter, r *http.Request, code int, id int64) {
	var out wire.Rollout
	err := s.opt.Store.View(r.Context(), func(tx *store.Tx) error {
		ro, err := tx.Rollout(id)
		if errors.Is(err, store.ErrNotFound) {
			return errorf(http.StatusNotFound, "no rollout %d", id)
		}
		if err != nil {
			return err
		}
		out, err = rolloutOut(tx, ro, true)
		return err
	})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, code, out)
}

func (s *Server) getRollout(w http.ResponseWriter, r *http.Request) {
	id, err := rolloutID(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	s.answerRollout(w, r, http.StatusOK, id)
}

// listRollouts answers GET /rollouts[?active=1][&limit=N]: newest first,
// without their machines.
func (s *Server) listRollouts(w http.ResponseWriter, r *http.Request) {
	limit, err := intParam(r, "limit", 20, 1, 500)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	out := []wire.Rollout{}
	err = s.opt.Store.View(r.Context(), func(tx *store.Tx) error {
		ros, err := tx.Rollouts(r.URL.Query().Get("active") != "", limit)
		for _, ro := range ros {
			o, err := rolloutOut(tx, ro, false)
			if err != nil {
				return err
			}
			out = append(out, o)
		}
		return err
	})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// rolloutAction answers POST /rollouts/ID/pause, resume (with new limits,
// optionally) and cancel.
func (s *Server) rolloutAction(w http.ResponseWriter, r *http.Request) {
	id, err := rolloutID(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	action := r.PathValue("action")
	var change wire.RolloutChange
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<10))
	if err != nil {
		s.writeErr(w, errorf(http.StatusRequestEntityTooLarge, "the body is too large"))
		return
	}
	if len(body) > 0 {
		if err := strictJSON(body, &change); err != nil {
			s.writeErr(w, err)
			return
		}
	}
	if action != "resume" && (change.MaxParallel != nil || change.MaxFailures != nil) {
		s.writeErr(w, errorf(http.StatusUnprocessableEntity, "new limits go with resume"))
		return
	}
	if (change.MaxParallel != nil && *change.MaxParallel < 1) || (change.MaxFailures != nil && *change.MaxFailures < 0) {
		s.writeErr(w, errorf(http.StatusUnprocessableEntity, "max_parallel must be 1 or more, max_failures 0 or more"))
		return
	}
	now, who, ip := s.now(), actor(r), clientIP(r)
	var power []powerAction
	err = s.opt.Store.Update(r.Context(), func(tx *store.Tx) error {
		power = nil
		ro, err := tx.LockRollout(id, now)
		if errors.Is(err, store.ErrNotFound) {
			return errorf(http.StatusNotFound, "no rollout %d", id)
		}
		if err != nil {
			return err
		}
		from := ro.State
		if !ro.EndedAt.IsZero() || ro.State == wire.RolloutCancelled {
			return errorf(http.StatusConflict, "rollout %d is %s: start a new one", id, ro.State)
		}
		var summary string
		switch action {
		case "pause":
			if ro.State != wire.RolloutRunning {
				return errorf(http.StatusConflict, "rollout %d is %s, not running", id, ro.State)
			}
			ro.State, ro.Reason = wire.RolloutPaused, "paused by "+who
			summary = fmt.Sprintf("rollout %d paused: no machine starts; those flashing go on", id)
		case "resume":
			if ro.State == wire.RolloutRunning {
				return errorf(http.StatusConflict, "rollout %d is running already", id)
			}
			if change.MaxParallel != nil {
				ro.MaxParallel = *change.MaxParallel
			}
			if change.MaxFailures != nil {
				ro.MaxFailures = *change.MaxFailures
			} else if ro.State == wire.RolloutStopped {
				// The failures so far are accepted; the next one stops it again.
				n, err := tx.CountRolloutMachines(id, wire.MemberFailed)
				if err != nil {
					return err
				}
				ro.MaxFailures = n
			}
			ro.State, ro.Reason = wire.RolloutRunning, ""
			summary = fmt.Sprintf("rollout %d resumed: at most %d at a time, stop after %d failures", id, ro.MaxParallel, ro.MaxFailures)
		case "cancel":
			members, err := tx.RolloutMachines(id)
			if err != nil {
				return err
			}
			n := 0
			for _, mem := range members {
				if mem.State == wire.MemberWaiting {
					mem.State, mem.Reason, mem.EndedAt = wire.MemberCancelled, "the rollout was cancelled: it keeps its image", now
					if err := tx.PutRolloutMachine(mem); err != nil {
						return err
					}
					n++
				}
			}
			ro.State, ro.Reason = wire.RolloutCancelled, "cancelled by "+who
			summary = fmt.Sprintf("rollout %d cancelled: %d waiting machines keep their image; those flashing go on", id, n)
		default:
			return errorf(http.StatusNotFound, "no action %q: pause, resume or cancel", action)
		}
		ro.UpdatedAt = now
		if err := tx.PutRollout(ro); err != nil {
			return err
		}
		kind := map[string]string{"pause": "rollout.paused", "resume": "rollout.resumed", "cancel": "rollout.cancelled"}[action]
		if err := rolloutEvent(tx, now, ro, kind, who, ip, summary, map[string]any{"from": from}); err != nil {
			return err
		}
		power, _, err = s.stepRollout(tx, id, "", now)
		return err
	})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	s.runPower(power)
	s.answerRollout(w, r, http.StatusOK, id)
}
