package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"bty/catalog"
)

// The image fan-out cache (bty serve --cache DIR): the machines of a
// segment read remote images (http(s), oras://) from their server, which
// reads each from its origin once.
//
//	GET /cache/<sha256>/<name>    an image whose digest is known (plans, /catalog.toml, /images)
//	GET /cache/ref/<ref>/<name>   a row whose digest is not known yet (http without sha256)
//	  complete -> the file (sendfile, Range, ETag "sha256:<digest>")
//	  filling  -> streamed as it fills; a read past the bytes there waits for
//	              them (Range too); the last byte only once the digest matched
//	  absent   -> one fill starts, whoever asked first (single flight)
//	fill: the origin's catalog.Source (HTTPSource resumes with Range and
//	  If-Range, OrasSource reads the layer by digest), reopened at the offset
//	  reached after a cut; hashed as written; size and digest checked, then
//	  renamed to DIR/<sha256> with DIR/<sha256>.json beside it. A bad fill is
//	  deleted, its readers cut, and its error answered (502) for a minute.
//	room: before a fill takes space, the least recently used complete images
//	  that nobody reads (and no planned flash names) are deleted to stay under
//	  --cache-max; when that is not enough the request is refused (503).
//
// An http(s) row without a sha256 is filled under its ref; the digest the
// fill computed is pinned to the ref with the origin's validator (ETag, else
// Last-Modified) in DIR/pins.json, and plans name it from then on. A catalog
// refresh asks the origin again (HEAD): a changed validator drops the pin,
// and the next fill reads the new version.

// cacheFailTTL is how long a failed fill's error is answered before the next
// request tries the origin again: longer than a flash's own retries (about 8
// s of backoff), so 50 machines retrying do not make 300 origin requests.
const cacheFailTTL = time.Minute

// cacheAttempts is how often in a row the origin may fail without
// delivering a byte before a fill fails (the flash engine's rule).
const cacheAttempts = 6

// cacheStep is how much room a fill of unknown size takes at a time.
const cacheStep = 64 << 20

// cacheWake is how much a fill writes before it wakes its waiting readers:
// a wake per write (64 KiB or less from a network origin) had 32 readers
// take turns on the lock thousands of times a second.
const cacheWake = 1 << 20

// errCacheFull: no room can be made under the cap (every image is in use).
var errCacheFull = errors.New("the image cache is full of images in use")

// cacheOrigin is where a fill reads an image.
type cacheOrigin struct {
	src    catalog.Source
	sha256 string // the digest the bytes must have, "" when unknown
	size   int64  // the size they must have, 0 when unknown
	name   string
	ref    string
	url    string // the row's src, for messages, and HEAD for a pin
}

type originFunc func(ctx context.Context) (cacheOrigin, error)

// cacheMeta is DIR/<sha256>.json: a complete image.
type cacheMeta struct {
	SHA256   string    `json:"sha256"`
	Name     string    `json:"name"`
	Ref      string    `json:"ref,omitempty"`
	Src      string    `json:"src"`
	Size     int64     `json:"size"`
	FilledAt time.Time `json:"filled_at"`
}

// cachePin is the digest a fill computed for an http(s) row without one.
type cachePin struct {
	SHA256    string `json:"sha256"`
	Validator string `json:"validator"` // ETag, else Last-Modified; "" when the origin gave none
	Src       string `json:"src"`
	Tag       string `json:"tag"` // the ETag its readers were given during the fill
}

// cacheItem is one image, complete or filling.
type cacheItem struct {
	key string // the digest, or "ref:<ref>" while a fill without a digest runs
	tag string // the ETag of a fill under a ref, "" for digests

	// guarded by Cache.mu
	meta     cacheMeta
	path     string // the data file (DIR/.fill-* while filling)
	size     int64  // -1 until the origin announced it
	written  int64
	woke     int64 // written when the readers were last woken
	reserved int64 // room taken under the cap
	done     bool  // complete and verified
	err      error // the fill failed
	wake     chan struct{}
	readers  int
	lastUsed time.Time
	aliases  []string // ETags of ref fills that turned out to be this image
}

type cacheFailure struct {
	err error
	at  time.Time
}

// Cache is the image fan-out cache of one server. Its state is its
// directory; nothing of it is in the store (it is per server, per segment).
type Cache struct {
	dir    string
	max    int64 // 0: no cap
	ctx    context.Context
	client *http.Client // the HEAD of a pin's revalidation
	logf   func(format string, args ...any)
	// event logs an event about an image (subject: its ref, else digest).
	event func(kind, subject, summary string, details map[string]any)
	// needed returns the digests planned flashes read (kept from eviction).
	needed func(ctx context.Context) (map[string]bool, error)

	fills  sync.WaitGroup // the fills running (Server.Close waits for them)
	origin atomic.Int64   // bytes read from origins, for /metrics
	mu     sync.Mutex
	items  map[string]*cacheItem
	pins   map[string]cachePin // ref -> pin
	failed map[string]cacheFailure
	used   int64
}

// OpenCache opens the cache in dir: complete images are kept, unfinished
// fills deleted.
func OpenCache(dir string, max int64) (*Cache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("--cache %s: %w", dir, err)
	}
	c := &Cache{dir: dir, max: max, ctx: context.Background(), client: catalog.NewHTTPClient(), logf: func(string, ...any) {},
		event: func(string, string, string, map[string]any) {}, needed: func(context.Context) (map[string]bool, error) { return nil, nil },
		items: map[string]*cacheItem{}, pins: map[string]cachePin{}, failed: map[string]cacheFailure{}}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("--cache %s: %w", dir, err)
	}
	metas := map[string]bool{}
	for _, e := range ents {
		if sum, ok := strings.CutSuffix(e.Name(), ".json"); ok {
			metas[sum] = true
		}
	}
	for _, e := range ents {
		name := e.Name()
		path := filepath.Join(dir, name)
		switch {
		case strings.HasPrefix(name, ".fill-"):
			os.Remove(path) // a fill cut by a restart starts again
		case name == "pins.json":
			if b, err := os.ReadFile(path); err == nil {
				json.Unmarshal(b, &c.pins)
			}
		case strings.HasSuffix(name, ".json"):
			sum := strings.TrimSuffix(name, ".json")
			if it := c.load(sum); it != nil {
				c.items[sum] = it
				c.used += it.size
			} else {
				os.Remove(path)
				os.Remove(filepath.Join(dir, sum))
			}
		case !metas[name]:
			os.Remove(path) // data without its .json: the fill ended before it was recorded
		}
	}
	for ref, p := range c.pins {
		if c.items[p.SHA256] == nil {
			delete(c.pins, ref)
		}
	}
	return c, nil
}

// load reads a complete image's record; nil when it does not match its data.
func (c *Cache) load(sum string) *cacheItem {
	b, err := os.ReadFile(filepath.Join(c.dir, sum+".json"))
	if err != nil {
		return nil
	}
	var m cacheMeta
	path := filepath.Join(c.dir, sum)
	fi, err := os.Stat(path)
	if json.Unmarshal(b, &m) != nil || err != nil || m.SHA256 != sum || fi.Size() != m.Size {
		return nil
	}
	return &cacheItem{key: sum, meta: m, path: path, size: m.Size, written: m.Size, reserved: m.Size, done: true,
		wake: make(chan struct{}), lastUsed: fi.ModTime()}
}

// acquire returns the item of key, starting its fill from origin when there
// is none. A reader holds the item until release (it is not evicted
// meanwhile). A recent failed fill answers its error instead.
func (c *Cache) acquire(key string, origin originFunc, reader bool) (*cacheItem, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	it := c.items[key]
	if it == nil {
		if f, ok := c.failed[key]; ok && now.Sub(f.at) < cacheFailTTL {
			return nil, f.err
		}
		delete(c.failed, key)
		it = &cacheItem{key: key, size: -1, wake: make(chan struct{})}
		if strings.HasPrefix(key, "ref:") {
			it.tag = `"fill-` + randomID() + `"`
		} else {
			it.meta.SHA256 = key
		}
		c.items[key] = it
		c.fills.Add(1)
		go c.fill(it, origin)
	}
	if reader {
		it.readers++
	}
	it.lastUsed = now
	return it, nil
}

// has reports whether the cache holds or fills key.
func (c *Cache) has(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.items[key] != nil
}

// release ends a read of it.
func (c *Cache) release(it *cacheItem) {
	c.mu.Lock()
	it.readers--
	it.lastUsed = time.Now()
	path, done := it.path, it.done
	c.mu.Unlock()
	if done {
		// The file's mtime is its last use, for the order of eviction
		// after a restart.
		os.Chtimes(path, time.Time{}, time.Now())
	}
}

// progress publishes the fill's state to its readers; call with c.mu held.
func (it *cacheItem) progress() {
	close(it.wake)
	it.wake = make(chan struct{})
}

// remove deletes a complete item; call with c.mu held.
func (c *Cache) remove(it *cacheItem) {
	delete(c.items, it.key)
	c.used -= it.reserved
	it.reserved = 0
	os.Remove(it.path + ".json")
	os.Remove(it.path)
	for ref, p := range c.pins {
		if p.SHA256 == it.meta.SHA256 {
			delete(c.pins, ref)
		}
	}
}

// pinsJSON is pins.json; call with c.mu held.
func (c *Cache) pinsJSON() []byte {
	b, _ := json.Marshal(c.pins)
	return b
}

// pin returns the digest pinned to an http(s) ref, "" when none.
func (c *Cache) pin(ref string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pins[ref].SHA256
}

// serve answers a GET or HEAD of it, whose ETag is etag, and releases it.
func (c *Cache) serve(w http.ResponseWriter, r *http.Request, it *cacheItem, etag string) {
	defer c.release(it)
	// The answer names the size: wait for the origin's.
	var size int64
	var done bool
	for {
		c.mu.Lock()
		var err error
		var wake chan struct{}
		size, done, err, wake = it.size, it.done, it.err, it.wake
		aliases := it.aliases
		c.mu.Unlock()
		if err != nil {
			cacheErr(w, err)
			return
		}
		for _, a := range aliases {
			// A machine that began under a ref fill's tag resumes under it.
			if a == r.Header.Get("If-Range") {
				etag = a
			}
		}
		if done || size >= 0 {
			break
		}
		select {
		case <-wake:
		case <-r.Context().Done():
			return
		}
	}
	c.mu.Lock()
	path := it.path
	c.mu.Unlock()
	f, err := os.Open(path)
	if err != nil {
		cacheErr(w, fmt.Errorf("open the cached image: %w", err))
		return
	}
	defer f.Close()
	w.Header().Set("ETag", etag)
	w.Header().Set("Content-Type", "application/octet-stream")
	if done {
		http.ServeContent(w, r, "", time.Time{}, f)
		return
	}
	start, end, partial := byteRange(r, size, etag)
	if start < 0 {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
		http.Error(w, "the range is not in the image", http.StatusRequestedRangeNotSatisfiable)
		return
	}
	w.Header().Set("Accept-Ranges", "bytes")
	w.Header().Set("Content-Length", strconv.FormatInt(end-start, 10))
	code := http.StatusOK
	if partial {
		code = http.StatusPartialContent
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end-1, size))
	}
	w.WriteHeader(code)
	// The headers now, not with the first bytes: a machine that asks for a
	// range the fill has not reached would wait for them, past its client's
	// response header timeout.
	http.NewResponseController(w).Flush()
	if r.Method == http.MethodHead {
		return
	}
	for off := start; off < end; {
		c.mu.Lock()
		written, done, err, wake := it.written, it.done, it.err, it.wake
		c.mu.Unlock()
		if err != nil {
			// The fill failed: the machine must not take what it got
			// for the whole image. Cutting the connection short of the
			// length announced says so; its retry gets the error.
			panic(http.ErrAbortHandler)
		}
		ready := written
		if !done {
			ready = min(written, size-1) // the last byte waits for the digest
		}
		if ready > off {
			n := min(ready, end) - off
			if _, err := f.Seek(off, io.SeekStart); err != nil {
				panic(http.ErrAbortHandler)
			}
			m, err := io.CopyN(w, f, n) // a LimitedReader of a file: sendfile
			off += m
			if err != nil {
				return // the machine went away
			}
			continue
		}
		select {
		case <-wake:
		case <-r.Context().Done():
			return
		}
	}
}

// byteRange reads a request's single Range (bytes=A-B, A-, -N) against an
// image of size bytes: [start, end). An If-Range other than etag, several
// ranges, or none, is the whole image; start is -1 for a range outside it.
func byteRange(r *http.Request, size int64, etag string) (start, end int64, partial bool) {
	spec, ok := strings.CutPrefix(r.Header.Get("Range"), "bytes=")
	if !ok || strings.Contains(spec, ",") || (r.Header.Get("If-Range") != "" && r.Header.Get("If-Range") != etag) {
		return 0, size, false
	}
	a, b, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return 0, size, false
	}
	switch {
	case a == "":
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 {
			return 0, size, false
		}
		return max(size-n, 0), size, true
	default:
		s, err := strconv.ParseInt(a, 10, 64)
		if err != nil {
			return 0, size, false
		}
		if s >= size {
			return -1, 0, false
		}
		e := size
		if b != "" {
			if v, err := strconv.ParseInt(b, 10, 64); err == nil && v < size-1 {
				e = v + 1
			}
		}
		if e <= s {
			return 0, size, false
		}
		return s, e, true
	}
}

// cacheErr answers a failed fill or lookup: 404 for an image the catalogs
// do not have, 503 for a full cache, 502 for the origin's failures.
func cacheErr(w http.ResponseWriter, err error) {
	code := http.StatusBadGateway
	var he *httpError
	switch {
	case errors.As(err, &he):
		code = he.Code
	case errors.Is(err, errCacheFull):
		code = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "60")
	}
	writeJSON(w, code, map[string]string{"detail": err.Error()})
}

// entries lists the cache for GET /admin/cache.
func (c *Cache) list() (used int64, items []*cacheItem, failed map[string]cacheFailure) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, it := range c.items {
		items = append(items, it)
	}
	failed = map[string]cacheFailure{}
	for k, f := range c.failed {
		if time.Since(f.at) < cacheFailTTL {
			failed[k] = f
		}
	}
	return c.used, items, failed
}

// drop deletes the complete images that keep does not want and nobody
// reads; it returns how many went. An image in use is left.
func (c *Cache) drop(keep func(*cacheItem) bool) (gone []cacheMeta, busy int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, it := range c.items {
		if keep(it) {
			continue
		}
		if !it.done || it.readers > 0 {
			busy++
			continue
		}
		c.remove(it)
		gone = append(gone, it.meta)
	}
	if len(gone) > 0 {
		writeFile(filepath.Join(c.dir, "pins.json"), c.pinsJSON())
	}
	return gone, busy
}

// revalidate asks the origin of each pinned ref for its validator (HEAD); a
// pin whose origin changed is dropped, and its ref returned: the next fill
// reads the new version. An origin that does not answer keeps its pin.
func (c *Cache) revalidate(ctx context.Context) []string {
	c.mu.Lock()
	pins := make(map[string]cachePin, len(c.pins))
	for k, v := range c.pins {
		pins[k] = v
	}
	c.mu.Unlock()
	var moved []string
	for ref, p := range pins {
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, p.Src, nil)
		if err != nil {
			continue
		}
		resp, err := c.client.Do(req)
		if err != nil {
			c.logf("cache: revalidate %s: %v (the cached version stays)", p.Src, err)
			continue
		}
		resp.Body.Close()
		v := resp.Header.Get("ETag")
		if v == "" {
			v = resp.Header.Get("Last-Modified")
		}
		if resp.StatusCode != http.StatusOK || (v == p.Validator && v != "") {
			continue
		}
		moved = append(moved, ref)
		c.logf("cache: %s changed (validator %q, was %q): the next request fetches it again", p.Src, v, p.Validator)
	}
	if len(moved) > 0 {
		c.mu.Lock()
		for _, ref := range moved {
			delete(c.pins, ref)
		}
		pins := c.pinsJSON()
		c.mu.Unlock()
		writeFile(filepath.Join(c.dir, "pins.json"), pins)
	}
	return moved
}

// writeFile writes data to path atomically (a temporary file, synced, renamed).
func writeFile(path string, data []byte) error {
	return writeSecret(path, string(data))
}

// String sums the cache up: "3 images, 4.2 of 200.0 GiB".
func (c *Cache) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.max > 0 {
		return fmt.Sprintf("%d images, %.1f of %.1f GiB", len(c.items), float64(c.used)/(1<<30), float64(c.max)/(1<<30))
	}
	return fmt.Sprintf("%d images, %.1f GiB, no cap", len(c.items), float64(c.used)/(1<<30))
}

// metrics writes the cache's lines of /metrics.
func (c *Cache) metrics(b *strings.Builder, help func(name, typ, text string)) {
	c.mu.Lock()
	states := map[string]int{"complete": 0, "filling": 0}
	for _, it := range c.items {
		if it.done {
			states["complete"]++
		} else {
			states["filling"]++
		}
	}
	used := c.used
	c.mu.Unlock()
	help("bty_cache_images", "gauge", "Images in the fan-out cache, complete or filling.")
	for _, st := range []string{"complete", "filling"} {
		fmt.Fprintf(b, "bty_cache_images{state=%q} %d\n", st, states[st])
	}
	help("bty_cache_bytes", "gauge", "Bytes the cache holds or has reserved for fills.")
	fmt.Fprintf(b, "bty_cache_bytes %d\n", used)
	help("bty_cache_max_bytes", "gauge", "The cache's cap (--cache-max), 0 for none.")
	fmt.Fprintf(b, "bty_cache_max_bytes %d\n", c.max)
	help("bty_cache_origin_bytes_total", "counter", "Bytes the cache read from the images' origins.")
	fmt.Fprintf(b, "bty_cache_origin_bytes_total %d\n", c.origin.Load())
}
