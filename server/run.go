package server

import (
	"context"
	"time"

	"bty/server/store"
)

// Run does the server's periodic work until ctx ends: the web UI's live
// updates, the rollouts' steps, the event retention every ten minutes, a
// refresh of the catalogs every refresh (none when zero; with a cache, also
// one at the start), a reload of the catalogs when another server on the
// database refreshed them (or notices were lost), and the Wake-on-LAN
// packets of reflashes armed through other servers.
func (s *Server) Run(ctx context.Context, refresh time.Duration) {
	go s.ui.Run(ctx) // the web UI's live updates
	prune := time.NewTicker(10 * time.Minute)
	defer prune.Stop()
	var tick <-chan time.Time
	if refresh > 0 {
		t := time.NewTicker(refresh)
		defer t.Stop()
		tick = t.C
	}
	rollouts := time.NewTicker(rolloutTick)
	defer rollouts.Stop()
	s.prune(ctx)
	if s.cache != nil {
		// The cache's URLs name digests: resolve the oras:// tags now.
		if err := s.Refresh(ctx); err != nil && ctx.Err() == nil {
			s.logf("refresh the catalogs: %v", err)
		}
	}
	changes := s.changes
	for {
		select {
		case <-ctx.Done():
			return
		case <-rollouts.C:
			if err := s.StepRollouts(ctx); err != nil && ctx.Err() == nil {
				s.logf("rollouts: %v", err)
			}
		case <-prune.C:
			s.prune(ctx)
		case <-tick:
			if err := s.Refresh(ctx); err != nil && ctx.Err() == nil {
				s.logf("refresh the catalogs: %v", err)
			}
		case c, ok := <-changes:
			if !ok {
				changes = nil
				continue
			}
			switch {
			case (c.Topic == topicCatalogs && c.Detail != s.id) || c.Topic == store.Resync:
				machines, changed, err := s.reload(ctx)
				if err == nil {
					err = s.followCatalogs(ctx, changed, boundRefs(machines))
				}
				if err != nil && ctx.Err() == nil {
					s.logf("reload the catalogs another server refreshed: %v", err)
				}
			case c.Topic == topicWake:
				s.wakeFor(ctx, c.Detail)
			}
		}
	}
}

func (s *Server) prune(ctx context.Context) {
	if s.opt.EventsKeep <= 0 && s.opt.EventsMaxAge <= 0 {
		return
	}
	var before time.Time
	if s.opt.EventsMaxAge > 0 {
		before = s.now().Add(-s.opt.EventsMaxAge)
	}
	err := s.opt.Store.Update(ctx, func(tx *store.Tx) error {
		n, err := tx.Prune(s.opt.EventsKeep, before)
		if err == nil && n > 0 {
			s.logf("retention: %d old events deleted", n)
		}
		return err
	})
	if err != nil && ctx.Err() == nil {
		s.logf("retention: %v", err)
	}
}
