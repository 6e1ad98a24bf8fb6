package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"bty/server/store"
	"bty/wire"
)

// The admin API's events (list, acknowledge) and API tokens (create, revoke).

// listEvents answers GET /events with bty-web's filters (kind, subject_kind,
// subject_id, actor, source_ip, failed, before_id, limit) and after_id, for
// following the log: then the events come oldest first.
func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.EventFilter{Kind: q.Get("kind"), SubjectKind: q.Get("subject_kind"), SubjectID: q.Get("subject_id"),
		Actor: q.Get("actor"), SourceIP: q.Get("source_ip"), Failed: q.Get("failed") != ""}
	if f.SubjectKind == "machine" || (f.SubjectKind == "" && f.SubjectID != "") {
		if mac, err := wire.NormalizeMAC(f.SubjectID); err == nil {
			f.SubjectID = mac
		}
	}
	var err error
	var before, after int
	if f.Limit, err = intParam(r, "limit", 50, 1, 500); err == nil {
		if before, err = intParam(r, "before_id", 0, 0, 1<<62); err == nil {
			after, err = intParam(r, "after_id", 0, 0, 1<<62)
		}
	}
	if err != nil {
		s.writeErr(w, err)
		return
	}
	f.BeforeID, f.AfterID = int64(before), int64(after)
	var evs []store.Event
	err = s.opt.Store.View(r.Context(), func(tx *store.Tx) (err error) {
		evs, err = tx.Events(f)
		return err
	})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	out := wire.Events{Events: make([]wire.Event, 0, len(evs))}
	for _, e := range evs {
		we := wire.Event{ID: e.ID, TS: e.TS, Kind: e.Kind, SubjectKind: e.SubjectKind, SubjectID: e.SubjectID, Actor: e.Actor,
			SourceIP: sp(e.SourceIP), Summary: e.Summary, Acknowledged: e.Acknowledged}
		if e.Details != "" {
			json.Unmarshal([]byte(e.Details), &we.Details)
		}
		out.Events = append(out.Events, we)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) ackEvent(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.writeErr(w, errorf(http.StatusNotFound, "no event %q", r.PathValue("id")))
		return
	}
	err = s.opt.Store.Update(r.Context(), func(tx *store.Tx) error {
		if err := tx.AckEvent(id); errors.Is(err, store.ErrNotFound) {
			return errorf(http.StatusNotFound, "no event %d", id)
		} else {
			return err
		}
	})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "acknowledged": true})
}

// createToken answers POST /tokens {"name"}: a new API token, shown once.
func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var req wire.Token
	if err := decode(w, r, 4<<10, &req); err != nil {
		s.writeErr(w, err)
		return
	}
	if err := wire.ValidTokenName(req.Name); err != nil || req.Token != "" {
		s.writeErr(w, errorf(http.StatusUnprocessableEntity, "give a token name only: %v", err))
		return
	}
	tok, hash := newToken()
	now, who, ip := s.now(), actor(r), clientIP(r)
	err := s.opt.Store.Update(r.Context(), func(tx *store.Tx) error {
		if err := tx.AddToken(req.Name, hash, now); errors.Is(err, store.ErrExists) {
			return errorf(http.StatusConflict, "a token named %s exists: revoke it first, or pick another name", req.Name)
		} else if err != nil {
			return err
		}
		return tx.AddEvent(&store.Event{TS: now, Kind: "token.created", SubjectKind: "token", SubjectID: req.Name, Actor: who, SourceIP: ip, Summary: "token " + req.Name + " created"})
	})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, wire.Token{Name: req.Name, Token: tok})
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	now, who, ip := s.now(), actor(r), clientIP(r)
	err := s.opt.Store.Update(r.Context(), func(tx *store.Tx) error {
		if err := tx.DeleteToken(name); errors.Is(err, store.ErrNotFound) {
			return errorf(http.StatusNotFound, "no token named %s", name)
		} else if err != nil {
			return err
		}
		if n, err := tx.Tokens(); err != nil {
			return err
		} else if n == 0 {
			return errorf(http.StatusConflict, "%s is the last token: create another first, or nobody could manage this server", name)
		}
		return tx.AddEvent(&store.Event{TS: now, Kind: "token.revoked", SubjectKind: "token", SubjectID: name, Actor: who, SourceIP: ip, Summary: "token " + name + " revoked"})
	})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
