package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"bty/catalog"
	"bty/server/store"
	"bty/wire"
)

// indexTTL is how long a listing of the images is reused: a burst of boots
// scans the image directory once, and a file dropped in shows up within it.
const indexTTL = 5 * time.Second

// imageIndex lists the images machines can be bound to: the catalog server's
// own images (refs under the canonical base) and its catalogs' rows, with
// the digests of oras:// tags resolved at the last refresh. It is a cache:
// the source of truth is the image directory and the catalogs.
type imageIndex struct {
	srv      *catalog.Server
	base     string // canonical base URL of the server's own images
	dir      string
	sources  []string
	resolver *catalog.Resolver

	mu      sync.Mutex
	rows    []catalog.Entry
	at      time.Time
	digests map[string]string // ref -> digest resolved from the registry
}

// list returns the images, from the cache when it is fresh.
func (ix *imageIndex) list(ctx context.Context) ([]catalog.Entry, error) {
	ix.mu.Lock()
	if ix.rows != nil && time.Since(ix.at) < indexTTL {
		rows := ix.rows
		ix.mu.Unlock()
		return rows, nil
	}
	ix.mu.Unlock()
	rows, err := ix.srv.Entries(ctx, ix.base)
	if err != nil {
		return nil, fmt.Errorf("list the images: %w", err)
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for i := range rows {
		if rows[i].SHA256 == "" {
			rows[i].SHA256 = ix.digests[rows[i].Ref]
		}
	}
	if rows == nil {
		rows = []catalog.Entry{}
	}
	ix.rows, ix.at = rows, time.Now()
	return rows, nil
}

// byRef returns the images by ref.
func (ix *imageIndex) byRef(ctx context.Context) (map[string]catalog.Entry, error) {
	rows, err := ix.list(ctx)
	if err != nil {
		return nil, err
	}
	m := make(map[string]catalog.Entry, len(rows))
	for _, e := range rows {
		m[e.Ref] = e
	}
	return m, nil
}

// url is where a client that reached the server at base fetches e: the
// server's own images at base, the rest at their src.
func (ix *imageIndex) url(e catalog.Entry, base string) string {
	return ix.rebase(e, e.Src, base)
}

// rebase is u, a URL of e's (its src or block index), as a client that
// reached the server at base fetches it.
func (ix *imageIndex) rebase(e catalog.Entry, u, base string) string {
	if e.From == ix.dir && strings.HasPrefix(u, ix.base+"/") {
		return base + strings.TrimPrefix(u, ix.base)
	}
	return u
}

// entry returns the wire form of e for a client at base.
func (ix *imageIndex) entry(e catalog.Entry, base string) wire.ImageEntry {
	out := wire.ImageEntry{Name: e.Name, Format: e.Format, SizeBytes: e.Size, URL: ix.url(e, base), Ref: e.Ref, SHA256: e.SHA256}
	if e.SHA256 != "" {
		short := e.SHA256[:12]
		out.SHAShort = &short
	}
	if arch := e.Arch; arch != "" {
		out.Arch = &arch
	} else if arch := archOf(e.Name); arch != "" {
		out.Arch = &arch
	}
	return out
}

// archOf guesses an architecture from an image name, as bty-web does.
func archOf(name string) string {
	n := strings.ToLower(name)
	for _, a := range []struct{ word, arch string }{{"x86_64", "x86_64"}, {"amd64", "x86_64"}, {"aarch64", "aarch64"}, {"arm64", "aarch64"}, {"riscv64", "riscv64"}} {
		if strings.Contains(n, a.word) {
			return a.arch
		}
	}
	return ""
}

// reload re-reads the catalogs and resolves the digests of the bound oras://
// rows that have none, then drops the cached listing.
func (ix *imageIndex) reload(ctx context.Context, bound map[string]bool) error {
	var loaded []*catalog.Catalog
	for _, src := range ix.sources {
		c, err := ix.resolver.Load(ctx, src)
		if err != nil {
			return err
		}
		loaded = append(loaded, c)
	}
	ix.srv.SetCatalogs(loaded)
	rows, err := ix.srv.Entries(ctx, ix.base)
	if err != nil {
		return err
	}
	digests := map[string]string{}
	for _, e := range rows {
		if bound[e.Ref] && e.SHA256 == "" && strings.HasPrefix(strings.ToLower(e.Src), "oras://") {
			res, err := ix.resolver.Resolve(ctx, e.Src)
			if err != nil {
				return err
			}
			digests[e.Ref] = res.SHA256
		}
	}
	ix.mu.Lock()
	ix.digests, ix.rows = digests, nil
	ix.mu.Unlock()
	return nil
}

// Refresh re-reads the catalogs and compares each bound image's digest with
// the one recorded last time: a rolling tag that moved is logged
// (image.changed), and the flash-mode machines bound to it whose disks now
// differ are stale (machine.stale): they reflash at their next boot.
func (s *Server) Refresh(ctx context.Context) error {
	var machines []*store.Machine
	if err := s.opt.Store.View(ctx, func(tx *store.Tx) (err error) {
		machines, err = tx.Machines("")
		return err
	}); err != nil {
		return err
	}
	bound := map[string]bool{}
	for _, m := range machines {
		if m.ImageRef != "" {
			bound[m.ImageRef] = true
		}
	}
	if s.opt.Resolver != nil {
		if err := s.images.reload(ctx, bound); err != nil {
			return err
		}
	}
	images, err := s.images.byRef(ctx)
	if err != nil {
		return err
	}
	now := s.now()
	return s.opt.Store.Update(ctx, func(tx *store.Tx) error {
		for ref := range bound {
			e, ok := images[ref]
			if !ok || e.SHA256 == "" {
				continue
			}
			old, err := tx.Image(ref)
			if err != nil && err != store.ErrNotFound {
				return err
			}
			if err := tx.PutImage(&store.Image{Ref: ref, Name: e.Name, SHA256: e.SHA256, SeenAt: now}); err != nil {
				return err
			}
			if old == nil || old.SHA256 == e.SHA256 {
				continue
			}
			err = tx.AddEvent(&store.Event{TS: now, Kind: "image.changed", SubjectKind: "image", SubjectID: ref, Actor: "bty-serve",
				Summary: fmt.Sprintf("%s now has sha256 %s (was %s)", e.Name, e.SHA256[:12], old.SHA256[:12]), Details: fmt.Sprintf(`{"old":%q,"new":%q}`, old.SHA256, e.SHA256)})
			if err != nil {
				return err
			}
			for _, m := range machines {
				if m.ImageRef == ref && wire.FlashMode(m.BootMode) && m.DiskRef == ref && m.DiskSHA256 != e.SHA256 {
					if err := event(tx, now, "machine.stale", m.MAC, "bty-serve", "", fmt.Sprintf("%s changed: %s reflashes at its next boot", e.Name, m.MAC), map[string]any{"image_ref": ref, "sha256": e.SHA256}); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
}

func (s *Server) listImages(w http.ResponseWriter, r *http.Request) {
	out, err := s.Images(r.Context(), base(r))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// Images returns the images machines can be bound to, for a client that
// reached the server at base.
func (s *Server) Images(ctx context.Context, base string) ([]wire.ImageEntry, error) {
	rows, err := s.images.list(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]wire.ImageEntry, 0, len(rows))
	for _, e := range rows {
		out = append(out, s.images.entry(e, base))
	}
	return out, nil
}

func (s *Server) refreshCatalogs(w http.ResponseWriter, r *http.Request) {
	if err := s.Refresh(r.Context()); err != nil {
		s.writeErr(w, errorf(http.StatusBadGateway, "refresh the catalogs: %v", err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
