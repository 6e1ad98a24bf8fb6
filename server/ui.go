package server

import (
	"context"
	"os"
	"path/filepath"

	"bty/server/store"
	"bty/server/web"
	"bty/wire"
)

// The fleet server's side of the web UI (package web): the reads it needs
// (web.Fleet), and the store wrapper that tells it of every write.

// Machine returns one machine in its wire form, for a client that reached
// the server at base; a missing one is a 404 *httpError.
func (s *Server) Machine(ctx context.Context, mac, base string) (wire.Machine, error) {
	m, err := s.machineOut(ctx, mac, base)
	if he, ok := err.(*httpError); ok {
		return m, &web.APIError{Code: he.Code, Detail: he.Msg}
	}
	return m, err
}

// Summaries returns every machine with its latest cycle and state: the web
// UI's lists (the admin API's Machines, without decoding the inventories).
func (s *Server) Summaries(ctx context.Context) ([]web.Summary, error) {
	images, err := s.images.byRef(ctx)
	if err != nil {
		return nil, err
	}
	var out []web.Summary
	err = s.opt.Store.View(ctx, func(tx *store.Tx) error {
		ms, err := tx.Machines("")
		if err != nil {
			return err
		}
		cycles, err := tx.LatestCycles()
		if err != nil {
			return err
		}
		out = make([]web.Summary, len(ms))
		for i, m := range ms {
			e := images[m.ImageRef]
			out[i] = web.Summary{Machine: m, Cycle: cycles[m.MAC], State: machineState(m, cycles[m.MAC], e.SHA256), Image: e.Name}
		}
		return nil
	})
	return out, err
}

// Health says what the dashboard shows about the server.
func (s *Server) Health() web.Health {
	h := web.Health{Version: s.version(), Catalogs: s.opt.CatalogSources, PXE: s.opt.PXEResponder}
	if s.opt.BootDir != "" {
		for _, name := range []string{s.opt.Kernel, s.opt.Initrd} {
			fi, err := os.Stat(filepath.Join(s.opt.BootDir, name))
			h.BootFiles = append(h.BootFiles, web.BootFile{Name: name, Present: err == nil && fi.Mode().IsRegular(), Size: sizeOf(fi)})
		}
	}
	return h
}

func sizeOf(fi os.FileInfo) int64 {
	if fi == nil {
		return 0
	}
	return fi.Size()
}

// notifying is the server's store: after each write it calls changed (the
// UI's live updates).
type notifying struct {
	store.Store
	changed func()
}

func (n notifying) Update(ctx context.Context, fn func(*store.Tx) error) error {
	err := n.Store.Update(ctx, fn)
	if err == nil {
		n.changed()
	}
	return err
}
