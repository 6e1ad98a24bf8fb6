package server

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
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
	cache    *Cache // nil without --cache

	mu       sync.Mutex
	rows     []catalog.Entry
	at       time.Time
	digests  map[string]string           // ref -> digest resolved from the registry
	resolved map[string]catalog.Resolved // digest -> its oras layer, read by digest (a tag that moved keeps its old layer)
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
		if rows[i].SHA256 == "" && ix.cache != nil && ix.remote(rows[i]) {
			rows[i].SHA256 = ix.cache.pin(rows[i].Ref) // computed by the cache's fill
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
// server's own images at base, remote ones through the cache when there is
// one (by digest when it is known), the rest at their src.
func (ix *imageIndex) url(e catalog.Entry, base string) string {
	switch {
	case ix.cache != nil && ix.remote(e) && e.SHA256 != "":
		return base + "/cache/" + e.SHA256 + "/" + url.PathEscape(e.Name)
	case ix.cache != nil && ix.remote(e):
		return base + "/cache/ref/" + e.Ref + "/" + url.PathEscape(e.Name)
	}
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

// remote reports whether e is a catalog row read over the network (http(s)
// or oras://), not one of the server's own images.
func (ix *imageIndex) remote(e catalog.Entry) bool {
	scheme, _, _ := strings.Cut(strings.ToLower(e.Src), "://")
	return e.From != ix.dir && (scheme == "http" || scheme == "https" || scheme == "oras")
}

// keep remembers a resolved oras layer by its digest.
func (ix *imageIndex) keep(res catalog.Resolved) {
	if _, ok := res.Source.(*catalog.OrasSource); !ok || res.SHA256 == "" {
		return
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.resolved == nil {
		ix.resolved = map[string]catalog.Resolved{}
	}
	ix.resolved[res.SHA256] = res
}

// layer returns the oras layer resolved with this digest, if one was.
func (ix *imageIndex) layer(sum string) (catalog.Resolved, bool) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	res, ok := ix.resolved[sum]
	return res, ok
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
// rows that have none (with a cache, of every oras:// row: the cache's URLs
// and /catalog.toml name them), then drops the cached listing.
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
		if (bound[e.Ref] || ix.cache != nil) && e.SHA256 == "" && strings.HasPrefix(strings.ToLower(e.Src), "oras://") {
			res, err := ix.resolver.Resolve(ctx, e.Src)
			if err != nil && !bound[e.Ref] {
				continue // listed without a digest; the cache resolves it when asked
			}
			if err != nil {
				return err
			}
			digests[e.Ref] = res.SHA256
			ix.keep(res)
		}
	}
	ix.mu.Lock()
	ix.digests, ix.rows = digests, nil
	ix.mu.Unlock()
	return nil
}

// topicCatalogs is the store notice of a refresh that every server on the
// database repeats: one asked for on the API, or one that found a moved tag.
// Its detail is the id of the server that refreshed.
const topicCatalogs = "catalogs"

// reload re-reads the catalogs, and the digests of the bound oras:// rows,
// and returns the machines. With a cache it first asks the origins of its
// pinned http(s) rows, and it returns the bound refs whose digest this
// server saw change (a moved tag, a changed origin), to pre-warm.
func (s *Server) reload(ctx context.Context) (machines []*store.Machine, changed []string, err error) {
	if err := s.opt.Store.View(ctx, func(tx *store.Tx) (err error) {
		machines, err = tx.Machines("")
		return err
	}); err != nil {
		return nil, nil, err
	}
	bound := boundRefs(machines)
	var before map[string]catalog.Entry
	if s.cache != nil {
		changed = s.cache.revalidate(ctx)
		before, _ = s.images.byRef(ctx) // none: nothing to compare
	}
	if s.opt.Resolver != nil {
		if err := s.images.reload(ctx, bound); err != nil {
			return nil, nil, err
		}
	}
	if s.cache != nil {
		after, err := s.images.byRef(ctx)
		if err != nil {
			return nil, nil, err
		}
		for ref := range bound {
			if old := before[ref].SHA256; old != "" && old != after[ref].SHA256 {
				changed = append(changed, ref)
			}
		}
	}
	return machines, changed, nil
}

// boundRefs returns the refs of the images machines are bound to.
func boundRefs(machines []*store.Machine) map[string]bool {
	bound := map[string]bool{}
	for _, m := range machines {
		if m.ImageRef != "" {
			bound[m.ImageRef] = true
		}
	}
	return bound
}

// Refresh re-reads the catalogs and compares each bound image's digest with
// the one recorded last time: a rolling tag that moved is logged
// (image.changed), and the flash-mode machines bound to it whose disks now
// differ are stale (machine.stale): they reflash at their next boot. The
// other servers on the database then re-read their catalogs too.
func (s *Server) Refresh(ctx context.Context) error { return s.refresh(ctx, false) }

// refresh is Refresh; announce tells the other servers even when no digest
// moved.
func (s *Server) refresh(ctx context.Context, announce bool) error {
	machines, changed, err := s.reload(ctx)
	if err != nil {
		return err
	}
	bound := boundRefs(machines)
	images, err := s.images.byRef(ctx)
	if err != nil {
		return err
	}
	now := s.now()
	var stored []string // the bound refs whose digest moved since the store recorded it
	err = s.opt.Store.Update(ctx, func(tx *store.Tx) error {
		stored = nil
		if announce {
			tx.Notify(topicCatalogs, s.id)
		}
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
			stored = append(stored, ref)
			tx.Notify(topicCatalogs, s.id)
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
	if err != nil {
		return err
	}
	return s.followCatalogs(ctx, append(changed, stored...), bound)
}

// followCatalogs brings the cache after a reload of the catalogs: the
// changed images that machines are bound to are pre-warmed, and the cached
// images no row names any more are dropped.
func (s *Server) followCatalogs(ctx context.Context, changed []string, bound map[string]bool) error {
	if s.cache == nil {
		return nil
	}
	warmed := map[string]bool{}
	for _, ref := range changed {
		if bound[ref] && !warmed[ref] {
			warmed[ref] = true
			s.prewarm(ref)
		}
	}
	return s.dropSuperseded(ctx)
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
	if err := s.refresh(r.Context(), true); err != nil {
		s.writeErr(w, errorf(http.StatusBadGateway, "refresh the catalogs: %v", err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
