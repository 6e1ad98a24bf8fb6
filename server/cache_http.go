package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"bty/catalog"
	"bty/server/store"
	"bty/wire"
)

// The cache's routes and its place in the fleet server: which origin an
// image comes from, pre-warming, and what a catalog refresh drops.

// useCache connects the cache to the server: its fills outlive requests
// (they stop with the server), its events go to the log, and planned flashes
// keep their images.
func (s *Server) useCache(c *Cache) {
	s.cache = c
	s.images.cache = c
	c.ctx, c.logf = s.ctx, s.logf
	c.event = func(kind, subject, summary string, details map[string]any) {
		now := s.now()
		if details == nil {
			details = map[string]any{}
		}
		details["server"] = s.opt.BaseURL // the cache is this server's
		d, _ := json.Marshal(details)
		err := s.opt.Store.Update(s.ctx, func(tx *store.Tx) error {
			return tx.AddEvent(&store.Event{TS: now, Kind: kind, SubjectKind: "image", SubjectID: subject, Actor: "bty-serve", Summary: summary, Details: string(d)})
		})
		if err != nil && s.ctx.Err() == nil {
			s.logf("cache: log %s: %v", kind, err)
		}
	}
	c.needed = func(ctx context.Context) (digests map[string]bool, err error) {
		err = s.opt.Store.View(ctx, func(tx *store.Tx) error {
			digests, err = tx.OpenFlashDigests()
			return err
		})
		return digests, err
	}
}

func (s *Server) resolver() *catalog.Resolver {
	if s.opt.Resolver != nil {
		return s.opt.Resolver
	}
	return &catalog.Resolver{}
}

// originOf finds where the bytes with digest sum come from: an oras layer
// resolved with that digest (still there after its tag moved), else the row
// that has it.
func (s *Server) originOf(sum string) originFunc {
	return func(ctx context.Context) (cacheOrigin, error) {
		if res, ok := s.images.layer(sum); ok {
			return cacheOrigin{src: res.Source, sha256: sum, size: res.Size, name: res.Name, ref: res.Ref, url: res.Source.Name()}, nil
		}
		rows, err := s.images.list(ctx)
		if err != nil {
			return cacheOrigin{}, err
		}
		for _, e := range rows {
			if e.SHA256 == sum && s.images.remote(e) {
				return s.openOrigin(ctx, e, sum)
			}
		}
		return cacheOrigin{}, errorf(http.StatusNotFound, "no image of this server's catalogs has sha256 %s now (the catalogs changed since the plan was made): the next plan names the current one", sum)
	}
}

// knows reports whether an image of the catalogs has digest sum.
func (s *Server) knows(ctx context.Context, sum string) bool {
	if _, ok := s.images.layer(sum); ok {
		return true
	}
	rows, _ := s.images.list(ctx)
	for _, e := range rows {
		if e.SHA256 == sum && s.images.remote(e) {
			return true
		}
	}
	return false
}

// openOrigin opens row e as a fill's origin; want is the digest the bytes
// must have ("" when unknown).
func (s *Server) openOrigin(ctx context.Context, e catalog.Entry, want string) (cacheOrigin, error) {
	o := cacheOrigin{name: e.Name, ref: e.Ref, url: e.Src, size: e.Size, sha256: want}
	oras := strings.HasPrefix(strings.ToLower(e.Src), "oras://")
	if oras {
		e.SHA256 = "" // compared below, in words that fit a moved tag
	}
	res, err := s.resolver().Open(ctx, e)
	if err != nil {
		return o, err
	}
	if want != "" && oras && res.SHA256 != want {
		return o, errorf(http.StatusNotFound, "%s: the registry's layer is sha256:%s now, not %s (the tag moved): the next plan names the current one", e.Src, res.SHA256, want)
	}
	s.images.keep(res)
	o.src, o.sha256 = res.Source, firstOf(want, res.SHA256)
	if res.Size > 0 {
		o.size = res.Size
	}
	return o, nil
}

// cacheKey returns the cache's key of row e, where to fill it from, and the
// ETag its readers get ("" means the fill's own). An http(s) row without a
// digest is filled under its ref until the fill pins one.
func (s *Server) cacheKey(ctx context.Context, e catalog.Entry) (string, originFunc, string, error) {
	if e.SHA256 == "" {
		e.SHA256 = s.cache.pin(e.Ref)
	}
	if e.SHA256 != "" {
		return e.SHA256, s.originOf(e.SHA256), `"sha256:` + e.SHA256 + `"`, nil
	}
	if strings.HasPrefix(strings.ToLower(e.Src), "oras://") {
		o, err := s.openOrigin(ctx, e, "")
		if err != nil {
			return "", nil, "", err
		}
		fixed := func(context.Context) (cacheOrigin, error) { return o, nil }
		return o.sha256, fixed, `"sha256:` + o.sha256 + `"`, nil
	}
	return "ref:" + e.Ref, func(ctx context.Context) (cacheOrigin, error) { return s.openOrigin(ctx, e, "") }, "", nil
}

// cacheDigest answers GET|HEAD /cache/<sha256>/<name>.
func (s *Server) cacheDigest(w http.ResponseWriter, r *http.Request) {
	sum, ok := catalog.NormalizeSHA256(r.PathValue("sha"))
	if !ok {
		cacheErr(w, errorf(http.StatusNotFound, "%q is not a sha256: the cache's URLs are /cache/<sha256>/<name>", r.PathValue("sha")))
		return
	}
	if !s.cache.has(sum) && !s.knows(r.Context(), sum) {
		cacheErr(w, errorf(http.StatusNotFound, "no image of this server's catalogs has sha256 %s now (the catalogs changed since the plan was made?): the next plan names the current one", sum))
		return
	}
	it, err := s.cache.acquire(sum, s.originOf(sum), true)
	if err != nil {
		cacheErr(w, err)
		return
	}
	s.cache.serve(w, r, it, `"sha256:`+sum+`"`)
}

// cacheRef answers GET|HEAD /cache/ref/<ref>/<name>: a row whose digest was
// not known when its URL was made.
func (s *Server) cacheRef(w http.ResponseWriter, r *http.Request) {
	rows, err := s.images.byRef(r.Context())
	if err != nil {
		cacheErr(w, err)
		return
	}
	e, ok := rows[strings.ToLower(r.PathValue("ref"))]
	if !ok || !s.images.remote(e) {
		cacheErr(w, errorf(http.StatusNotFound, "no remote image of this server's catalogs has ref %s", r.PathValue("ref")))
		return
	}
	key, origin, etag, err := s.cacheKey(r.Context(), e)
	if err != nil {
		cacheErr(w, err)
		return
	}
	it, err := s.cache.acquire(key, origin, true)
	if err != nil {
		cacheErr(w, err)
		return
	}
	if etag == "" {
		etag = it.tag
	}
	s.cache.serve(w, r, it, etag)
}

// warm starts filling row e unless it is cached or filling.
func (s *Server) warm(ctx context.Context, e catalog.Entry) (*cacheItem, error) {
	key, origin, _, err := s.cacheKey(ctx, e)
	if err != nil {
		return nil, err
	}
	return s.cache.acquire(key, origin, false)
}

// prewarm fills the image with this ref in the background when it is a
// remote one (an image assigned to machines, a tag that moved): the first
// machine that boots finds it cached, or filling.
func (s *Server) prewarm(ref string) {
	if s.cache == nil {
		return
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		rows, err := s.images.byRef(s.ctx)
		if err != nil {
			return
		}
		e, ok := rows[ref]
		if !ok || !s.images.remote(e) {
			return
		}
		if _, err := s.warm(s.ctx, e); err != nil && s.ctx.Err() == nil {
			s.logf("cache: pre-warm %s: %v", e.Name, err)
		}
	}()
}

// dropSuperseded deletes the cached images that no row of the catalogs
// names any more (a tag moved, an image left the catalogs), once nobody
// reads them and no planned flash names them.
func (s *Server) dropSuperseded(ctx context.Context) error {
	rows, err := s.images.list(ctx)
	if err != nil {
		return err
	}
	digests, refs := map[string]bool{}, map[string]bool{}
	for _, e := range rows {
		if e.SHA256 != "" {
			digests[e.SHA256] = true
		} else {
			refs[e.Ref] = true // its digest is not known: keep what it has
		}
	}
	needed, err := s.cache.needed(ctx)
	if err != nil {
		return err
	}
	gone, _ := s.cache.drop(func(it *cacheItem) bool {
		sum := it.meta.SHA256
		return sum == "" || digests[sum] || needed[sum] || refs[it.meta.Ref]
	})
	for _, m := range gone {
		s.logf("cache: dropped %s (%s): no catalog row names it now", m.Name, m.SHA256[:12])
		s.cache.event("cache.dropped", firstOf(m.Ref, m.SHA256), fmt.Sprintf("%s (sha256 %s) dropped: superseded", m.Name, m.SHA256[:12]), map[string]any{"sha256": m.SHA256, "bytes": m.Size})
	}
	return nil
}

// catalogTOML answers GET /catalog.toml with a cache: the remote rows' src
// is the cache (with the digest the server knows), so that the wizard and
// bty --catalog read them through this server too.
func (s *Server) catalogTOML(w http.ResponseWriter, r *http.Request) {
	rows, err := s.opt.Catalog.Entries(r.Context(), base(r))
	if err == nil {
		var known map[string]catalog.Entry
		if known, err = s.images.byRef(r.Context()); err == nil {
			for i, e := range rows {
				if !s.images.remote(e) {
					continue
				}
				if k, ok := known[e.Ref]; ok && e.SHA256 == "" {
					e.SHA256 = k.SHA256
				}
				e.Src = s.images.url(e, base(r))
				e.Ref = "" // the ref of the cache's URL, which readers compute
				rows[i] = e
			}
		}
	}
	var buf bytes.Buffer
	if err == nil {
		err = catalog.Encode(&buf, rows)
	}
	if err != nil {
		s.writeErr(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/toml; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "catalog.toml", time.Time{}, bytes.NewReader(buf.Bytes()))
}

// cacheEntry is an item's wire form.
func cacheEntry(it *cacheItem) wire.CacheEntry {
	e := wire.CacheEntry{SHA256: it.meta.SHA256, Name: it.meta.Name, Ref: it.meta.Ref, Src: it.meta.Src, State: "filling",
		SizeBytes: it.size, Filled: it.written, Readers: it.readers, LastUsed: it.lastUsed.UTC()}
	if it.done {
		e.State = "complete"
	}
	return e
}

// getCache answers GET /admin/cache: the images, the most recently used
// first, and the fills that failed in the last minute.
func (s *Server) getCache(w http.ResponseWriter, r *http.Request) {
	if s.cache == nil {
		s.writeErr(w, errorf(http.StatusNotFound, "this server has no image cache (bty serve --cache DIR)"))
		return
	}
	used, items, failed := s.cache.list()
	out := wire.Cache{Dir: s.cache.dir, MaxBytes: s.cache.max, UsedBytes: used, Entries: []wire.CacheEntry{}}
	s.cache.mu.Lock()
	for _, it := range items {
		out.Entries = append(out.Entries, cacheEntry(it))
	}
	s.cache.mu.Unlock()
	sort.Slice(out.Entries, func(i, j int) bool { return out.Entries[i].LastUsed.After(out.Entries[j].LastUsed) })
	for key, f := range failed {
		e := wire.CacheEntry{State: "failed", SizeBytes: -1, LastUsed: f.at.UTC(), Error: f.err.Error()}
		if ref, ok := strings.CutPrefix(key, "ref:"); ok {
			e.Ref = ref
		} else {
			e.SHA256 = key
		}
		out.Entries = append(out.Entries, e)
	}
	writeJSON(w, http.StatusOK, out)
}

// findRow finds a row by name or ref.
func findRow(rows []catalog.Entry, s string) (catalog.Entry, bool) {
	ref, _ := wire.NormalizeSHA256(s)
	for _, e := range rows {
		if e.Name == s || e.Ref == ref {
			return e, true
		}
	}
	return catalog.Entry{}, false
}

// warmCache answers POST /admin/cache/warm {"image"}: fill an image now.
func (s *Server) warmCache(w http.ResponseWriter, r *http.Request) {
	var req wire.CacheWarm
	if err := decode(w, r, 4<<10, &req); err != nil {
		s.writeErr(w, err)
		return
	}
	if s.cache == nil {
		s.writeErr(w, errorf(http.StatusNotFound, "this server has no image cache (bty serve --cache DIR)"))
		return
	}
	rows, err := s.images.list(r.Context())
	if err != nil {
		s.writeErr(w, err)
		return
	}
	e, ok := findRow(rows, req.Image)
	switch {
	case !ok:
		s.writeErr(w, errorf(http.StatusNotFound, "no image named %q in this server's catalogs (bty fleet images... GET /images lists them)", req.Image))
		return
	case !s.images.remote(e):
		s.writeErr(w, errorf(http.StatusUnprocessableEntity, "%s is one of the server's own images (--images): it is not cached", e.Name))
		return
	}
	it, err := s.warm(r.Context(), e)
	if err != nil {
		s.writeErr(w, errorf(http.StatusBadGateway, "warm %s: %v", e.Name, err))
		return
	}
	s.cache.mu.Lock()
	out := cacheEntry(it)
	s.cache.mu.Unlock()
	if out.Name == "" {
		out.Name, out.Ref, out.Src = e.Name, e.Ref, e.Src
	}
	writeJSON(w, http.StatusAccepted, out)
}

// deleteCache answers DELETE /admin/cache/<image>: the image by name, ref or
// sha256; 409 while it is read or filled.
func (s *Server) deleteCache(w http.ResponseWriter, r *http.Request) {
	if s.cache == nil {
		s.writeErr(w, errorf(http.StatusNotFound, "this server has no image cache (bty serve --cache DIR)"))
		return
	}
	name := r.PathValue("image")
	want := map[string]bool{}
	if sum, ok := wire.NormalizeSHA256(name); ok {
		want[sum] = true
	}
	if rows, err := s.images.list(r.Context()); err == nil {
		if e, ok := findRow(rows, name); ok && e.SHA256 != "" {
			want[e.SHA256] = true
		}
	}
	match := func(it *cacheItem) bool {
		return it.meta.SHA256 != "" && (want[it.meta.SHA256] || it.meta.Name == name || it.meta.Ref == strings.ToLower(name))
	}
	gone, busy := s.cache.drop(func(it *cacheItem) bool { return !match(it) })
	switch {
	case busy > 0:
		s.writeErr(w, errorf(http.StatusConflict, "%s is being read or filled: remove it when its downloads end", name))
		return
	case len(gone) == 0:
		s.writeErr(w, errorf(http.StatusNotFound, "%s is not in the cache (bty fleet cache ls)", name))
		return
	}
	for _, m := range gone {
		s.cache.event("cache.removed", firstOf(m.Ref, m.SHA256), fmt.Sprintf("%s (sha256 %s) removed from the cache by %s", m.Name, m.SHA256[:12], actor(r)), map[string]any{"sha256": m.SHA256, "bytes": m.Size})
	}
	w.WriteHeader(http.StatusNoContent)
}

// The routes that serve cached images, which bty_served_bytes_total counts
// as images.
const (
	cacheDigestRoute = "GET /cache/{sha}/{name}"
	cacheRefRoute    = "GET /cache/ref/{ref}/{name}"
)

var cachedImageRoutes = map[string]bool{cacheDigestRoute: true, cacheRefRoute: true}

func (s *Server) cacheRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /admin/cache", s.admin(s.getCache))
	m.HandleFunc("POST /admin/cache/warm", s.admin(s.warmCache))
	m.HandleFunc("DELETE /admin/cache/{image}", s.admin(s.deleteCache))
	if s.cache == nil {
		return
	}
	// Open, as the other routes machines read.
	m.HandleFunc(cacheDigestRoute, s.cacheDigest)
	m.HandleFunc(cacheRefRoute, s.cacheRef)
	if s.opt.Catalog != nil {
		m.HandleFunc("GET /catalog.toml", s.catalogTOML)
	}
}
