package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"bty/catalog"
	"bty/catalog/catalogtest"
	"bty/category"
	"bty/flash"
	"bty/wire"
)

// testImage returns n bytes that differ from block to block.
func testImage(n int, seed uint64) []byte {
	block := make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := 0; i+8 <= len(block); i += 8 {
		binary.LittleEndian.PutUint64(block[i:], r.Uint64())
	}
	out := make([]byte, n)
	for off := 0; off < n; off += len(block) {
		copy(out[off:], block)
		if off+8 <= n {
			binary.LittleEndian.PutUint64(out[off:], uint64(off))
		}
	}
	return out
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// origin is an image's web server on loopback: it serves data with Range
// and an ETag, at rate bytes a second (0: as fast as it can), counts the
// requests and the bytes it sent, and can cut its first answer short.
type origin struct {
	t    *testing.T
	ts   *httptest.Server
	rate int64
	cut  int64 // the first answer ends after this many bytes (0: never)

	mu      sync.Mutex
	data    []byte
	etag    string
	headers []http.Header // of each request
	served  atomic.Int64
}

func newOrigin(t *testing.T, data []byte) *origin {
	o := &origin{t: t, data: data, etag: `"v1"`}
	o.ts = httptest.NewServer(o)
	t.Cleanup(o.ts.Close)
	return o
}

func (o *origin) set(data []byte, etag string) {
	o.mu.Lock()
	o.data, o.etag = data, etag
	o.mu.Unlock()
}

func (o *origin) requests() []http.Header {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]http.Header(nil), o.headers...)
}

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	o.headers = append(o.headers, r.Header.Clone())
	first := len(o.headers) == 1
	data, etag := o.data, o.etag
	o.mu.Unlock()
	w.Header().Set("ETag", etag)
	w.Header().Set("Content-Type", "application/octet-stream") // no sniffing: the counts are the bytes sent
	body := &throttled{r: bytes.NewReader(data), rate: o.rate, served: &o.served, start: time.Now()}
	if first && o.cut > 0 {
		body.cut = o.cut
	}
	http.ServeContent(w, r, "img", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), body)
	if body.cutHit {
		panic(http.ErrAbortHandler)
	}
}

// throttled reads at most rate bytes a second and counts what it reads.
type throttled struct {
	r      *bytes.Reader
	rate   int64
	served *atomic.Int64
	start  time.Time
	n      int64
	cut    int64
	cutHit bool
}

func (t *throttled) Seek(off int64, whence int) (int64, error) { return t.r.Seek(off, whence) }

func (t *throttled) Read(p []byte) (int, error) {
	if len(p) > 64<<10 {
		p = p[:64<<10]
	}
	if t.cut > 0 && t.n+int64(len(p)) > t.cut {
		if p = p[:t.cut-t.n]; len(p) == 0 {
			t.cutHit = true
			return 0, errors.New("cut")
		}
	}
	n, err := t.r.Read(p)
	t.n += int64(n)
	t.served.Add(int64(n))
	if t.rate > 0 {
		if d := time.Duration(float64(t.n)/float64(t.rate)*float64(time.Second)) - time.Since(t.start); d > 0 {
			time.Sleep(d)
		}
	}
	return n, err
}

// cacheFixture is a fleet server with a cache of capacity max (0: no cap)
// and a catalog file holding toml.
func cacheFixture(t *testing.T, max int64, toml string, tweak ...func(*Options)) *fixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "catalog.toml")
	if err := os.WriteFile(path, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	res := &catalog.Resolver{}
	cat, err := res.Load(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	cache, err := OpenCache(filepath.Join(t.TempDir(), "cache"), max)
	if err != nil {
		t.Fatal(err)
	}
	return newFixture(t, append([]func(*Options){func(o *Options) {
		o.Catalog = catalog.NewServer(catalog.ServerOptions{Dir: o.ImagesDir, Catalogs: []*catalog.Catalog{cat}})
		o.CatalogSources, o.Resolver, o.Cache = []string{path}, res, cache
	}}, tweak...)...)
}

// row is a catalog row.
func row(name, src, sha string, size int) string {
	s := fmt.Sprintf("[[images]]\nname = %q\nsrc = %q\n", name, src)
	if sha != "" {
		s += fmt.Sprintf("sha256 = %q\n", sha)
	}
	if size > 0 {
		s += fmt.Sprintf("size_bytes = %d\n", size)
	}
	return s + "\n"
}

// download reads url from off on as a machine does (catalog.HTTPSource)
// and compares it with want[off:]; it returns the bytes read.
func download(ctx context.Context, url string, off int64, want []byte) (int64, error) {
	src := &catalog.HTTPSource{URL: url}
	rc, size, err := src.Open(ctx, off)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	if size != int64(len(want)) {
		return 0, fmt.Errorf("size %d, want %d", size, len(want))
	}
	buf := make([]byte, 1<<20)
	pos := off
	for {
		n, err := rc.Read(buf)
		if n > 0 {
			if pos+int64(n) > int64(len(want)) || !bytes.Equal(buf[:n], want[pos:pos+int64(n)]) {
				return pos - off, fmt.Errorf("bytes %d to %d differ from the image", pos, pos+int64(n))
			}
			pos += int64(n)
		}
		if err == io.EOF {
			if pos != int64(len(want)) {
				return pos - off, fmt.Errorf("ended at byte %d of %d", pos, len(want))
			}
			return pos - off, nil
		}
		if err != nil {
			return pos - off, err
		}
	}
}

// cacheList reads GET /admin/cache.
func (f *fixture) cacheList() wire.Cache {
	f.t.Helper()
	var c wire.Cache
	if err := json.Unmarshal([]byte(f.want(f.adm("GET", "/admin/cache", ""), 200, "GET /admin/cache").body), &c); err != nil {
		f.t.Fatal(err)
	}
	return c
}

// entryOf returns the cache's entry of digest sha.
func entryOf(c wire.Cache, sha string) *wire.CacheEntry {
	for i := range c.Entries {
		if c.Entries[i].SHA256 == sha {
			return &c.Entries[i]
		}
	}
	return nil
}

// envInt reads a positive number from the environment, else def.
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// TestCacheFanOut: 32 machines ask for one image at once through a cold
// cache from a rate-limited origin; the origin serves its bytes once, every
// machine gets them exactly (some with a Range past what is cached yet), and
// the whole takes about one origin download (logged, not asserted).
// BTY_CACHE_TEST_MIB=1024 BTY_CACHE_TEST_RATE_MIB=64 is the run.
func TestCacheFanOut(t *testing.T) {
	mib, rate := envInt("BTY_CACHE_TEST_MIB", 32), envInt("BTY_CACHE_TEST_RATE_MIB", 16)
	const machines = 32
	data := testImage(mib<<20, 1)
	o := newOrigin(t, data)
	o.rate = int64(rate) << 20
	f := cacheFixture(t, 0, "version = 1\n"+row("big.img", o.ts.URL+"/big.img", sum(data), len(data)))
	url := f.ts.URL + "/cache/" + sum(data) + "/big.img"

	// One download straight from the origin, for the comparison.
	start := time.Now()
	if _, err := download(context.Background(), o.ts.URL+"/big.img", 0, data); err != nil {
		t.Fatal(err)
	}
	direct := time.Since(start)
	o.served.Store(0)
	before := len(o.requests())

	start = time.Now()
	var wg sync.WaitGroup
	errs := make([]error, machines)
	took := make([]time.Duration, machines)
	for i := range machines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			off := int64(0)
			if i%8 == 7 {
				off = int64(len(data)) * int64(i) / (2 * machines) // a resumed download: bytes not cached yet
			}
			_, errs[i] = download(context.Background(), url, off, data)
			took[i] = time.Since(start)
		}()
	}
	wg.Wait()
	total := time.Since(start)
	for i, err := range errs {
		if err != nil {
			t.Errorf("machine %d: %v", i, err)
		}
	}
	if got := len(o.requests()) - before; got != 1 {
		t.Errorf("the origin got %d requests for the image, want 1 (single flight)", got)
	}
	if got := o.served.Load(); got != int64(len(data)) {
		t.Errorf("the origin served %d bytes, want the image's %d once", got, len(data))
	}
	if e := entryOf(f.cacheList(), sum(data)); e == nil || e.State != "complete" || e.SizeBytes != int64(len(data)) {
		t.Errorf("cache entry %+v, want complete with %d bytes", e, len(data))
	}
	t.Logf("%d MiB at %d MiB/s: one download from the origin %s; %d machines through a cold cache %s (%.2fx); first machine done after %s",
		mib, rate, direct.Round(time.Millisecond), machines, total.Round(time.Millisecond), total.Seconds()/direct.Seconds(), minDuration(took).Round(time.Millisecond))

	// Warm: the same again comes from the cache alone.
	if _, err := download(context.Background(), url, 0, data); err != nil {
		t.Fatal(err)
	}
	if got := len(o.requests()) - before; got != 1 {
		t.Errorf("a download of the cached image asked the origin (%d requests)", got)
	}
}

func minDuration(ds []time.Duration) time.Duration {
	m := ds[0]
	for _, d := range ds {
		m = min(m, d)
	}
	return m
}

// TestCacheCorruptOrigin: an origin whose bytes are not the catalog's
// digest is refused: the machines flashing through the cache fail (a source
// failure, never a flash that looks whole), nothing is cached, and their
// retries get the error without asking the origin again.
func TestCacheCorruptOrigin(t *testing.T) {
	data := testImage(8<<20, 2)
	bad := bytes.Clone(data)
	bad[len(bad)/2] ^= 0xff
	o := newOrigin(t, bad)
	f := cacheFixture(t, 0, "version = 1\n"+row("disk.img", o.ts.URL+"/disk.img", sum(data), 0))
	url := f.ts.URL + "/cache/" + sum(data) + "/disk.img"

	var wg sync.WaitGroup
	errs := make([]error, 4)
	results := make([]*flash.Result, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			target := filepath.Join(t.TempDir(), "target.img")
			results[i], errs[i] = flash.Flash(context.Background(), &catalog.HTTPSource{URL: url}, target,
				flash.Options{SHA256: sum(data), Retry: flash.Retry{Backoff: 10 * time.Millisecond}})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		switch {
		case err == nil:
			t.Errorf("machine %d: the flash of corrupt bytes succeeded", i)
		case !errors.Is(err, category.ErrSource) && !errors.Is(err, category.ErrIntegrity):
			t.Errorf("machine %d: %v, want a source or integrity failure", i, err)
		case results[i] != nil && results[i].SourceBytes >= int64(len(data)):
			t.Errorf("machine %d read all %d bytes of a corrupt fill", i, results[i].SourceBytes)
		}
	}
	t.Logf("a machine's error: %v", errs[0])
	if got := len(o.requests()); got != 1 {
		t.Errorf("the origin got %d requests, want 1 (the failure is remembered for the retries)", got)
	}
	c := f.cacheList()
	if c.UsedBytes != 0 || len(c.Entries) != 1 || c.Entries[0].State != "failed" || !strings.Contains(c.Entries[0].Error, "sha256") {
		t.Errorf("cache after a corrupt fill: %+v, want nothing but the failure", c)
	}
	files, _ := os.ReadDir(f.srv.cache.dir)
	for _, fi := range files {
		t.Errorf("the cache directory holds %s after a corrupt fill", fi.Name())
	}
	if kinds := f.kinds(); !has(kinds, "cache.fill_failed") {
		t.Errorf("events %v, want cache.fill_failed", kinds)
	}
	r := f.do("GET", "/cache/"+sum(data)+"/disk.img", "")
	if r.code != http.StatusBadGateway || !strings.Contains(r.body, "integrity") {
		t.Errorf("a retry got %d %s, want 502 naming the integrity failure", r.code, r.body)
	}
}

// TestCacheEvictionPinned: under --cache-max, filling an image evicts the
// least recently used one that nobody reads; an image a machine is reading
// stays, even when it is the least recently used; when everything is in
// use, the request is refused (503) rather than the cap exceeded.
func TestCacheEvictionPinned(t *testing.T) {
	const size = 24 << 20
	imgs := [][]byte{testImage(size, 10), testImage(size, 11), testImage(size, 12), testImage(size, 13)}
	toml := "version = 1\n"
	for i, d := range imgs {
		o := newOrigin(t, d)
		toml += row(fmt.Sprintf("img%d", i), o.ts.URL+"/img", sum(d), 0)
	}
	f := cacheFixture(t, size*5/2, toml)
	url := func(i int) string { return fmt.Sprintf("%s/cache/%s/img%d", f.ts.URL, sum(imgs[i]), i) }
	get := func(i int) {
		t.Helper()
		if _, err := download(context.Background(), url(i), 0, imgs[i]); err != nil {
			t.Fatalf("img%d: %v", i, err)
		}
	}
	// A machine starts reading img0 and stops after its first bytes.
	resp, err := http.Get(url(0))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	head := make([]byte, 4096)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}
	get(1) // img1 is used after img0: img0 is the least recently used
	get(2) // room for img2: img0 is read, so img1 goes
	c := f.cacheList()
	if entryOf(c, sum(imgs[0])) == nil || entryOf(c, sum(imgs[1])) != nil || entryOf(c, sum(imgs[2])) == nil {
		t.Errorf("after img2: %+v, want img0 (being read) and img2, img1 evicted", c.Entries)
	}
	if c.UsedBytes > c.MaxBytes {
		t.Errorf("used %d of %d", c.UsedBytes, c.MaxBytes)
	}
	// Everything left is in use: a third image cannot have room.
	resp2, err := http.Get(url(2))
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	if _, err := io.ReadFull(resp2.Body, make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	r := f.do("GET", "/cache/"+sum(imgs[3])+"/img3", "")
	if r.code != http.StatusServiceUnavailable || !strings.Contains(r.body, "--cache-max") {
		t.Errorf("img3 with both others read: %d %s, want 503 naming --cache-max", r.code, r.body)
	}
	// The machine reading img0 gets every byte.
	rest, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(append(head, rest...), imgs[0]) {
		t.Errorf("the pinned download of img0: %d bytes, %v; want the image", len(head)+len(rest), err)
	}
	resp.Body.Close()
	io.Copy(io.Discard, resp2.Body)
	resp2.Body.Close()
	waitFor(t, "the downloads to end", func() bool {
		for _, e := range f.cacheList().Entries {
			if e.Readers > 0 {
				return false
			}
		}
		return true
	})
	// Now img0 and img2 are free: img3 has room.
	get(3)
	c = f.cacheList()
	if entryOf(c, sum(imgs[0])) != nil || entryOf(c, sum(imgs[3])) == nil || c.UsedBytes > c.MaxBytes {
		t.Errorf("after img3: %+v (used %d of %d), want img0 (least recently used) evicted", c.Entries, c.UsedBytes, c.MaxBytes)
	}
	if kinds := f.kinds(); !has(kinds, "cache.evicted") {
		t.Errorf("events %v, want cache.evicted", kinds)
	}
}

// waitFor polls cond for up to a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestCacheResume: the origin cuts its answer in the middle of a fill; the
// cache asks for the rest (Range, If-Range with the first answer's ETag),
// and the machines reading meanwhile get the whole image.
func TestCacheResume(t *testing.T) {
	data := testImage(16<<20, 3)
	o := newOrigin(t, data)
	o.cut = 6 << 20
	o.rate = 32 << 20
	f := cacheFixture(t, 0, "version = 1\n"+row("disk.img", o.ts.URL+"/disk.img", sum(data), len(data)))
	url := f.ts.URL + "/cache/" + sum(data) + "/disk.img"
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = download(context.Background(), url, 0, data)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("machine %d: %v", i, err)
		}
	}
	reqs := o.requests()
	if len(reqs) != 2 {
		t.Fatalf("the origin got %d requests, want 2 (the first cut, the rest)", len(reqs))
	}
	rng, ifRange := reqs[1].Get("Range"), reqs[1].Get("If-Range")
	from, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(rng, "bytes="), "-"), 10, 64)
	if from <= 0 || from > o.cut || ifRange != `"v1"` {
		t.Errorf("the second request had Range %q If-Range %q, want the rest after at most %d bytes, under the first ETag", rng, ifRange, o.cut)
	}
	if got := o.served.Load(); got > int64(len(data))+(1<<20) {
		t.Errorf("the origin served %d bytes for an image of %d: the fill started again instead of resuming", got, len(data))
	}
	if e := entryOf(f.cacheList(), sum(data)); e == nil || e.State != "complete" {
		t.Errorf("cache entry %+v, want complete", e)
	}
}

// TestCacheRoutes: with a cache, plans, /images and /catalog.toml name the
// cache for remote rows (with the digest), the server's own images stay
// where they are, and assigning an image fills it before any machine asks.
func TestCacheRoutes(t *testing.T) {
	data := testImage(24<<20, 4) // more than the sockets buffer: a reader that stops holds it
	o := newOrigin(t, data)
	f := cacheFixture(t, 0, "version = 1\n"+row("remote.img", o.ts.URL+"/remote.img", sum(data), 0))
	ref := refOf(t, o.ts.URL+"/remote.img")
	f.want(f.adm("PUT", "/machines/"+testMAC, `{"bty_image_ref":"`+ref+`","boot_mode":"bty-flash-once","target_disk_serial":"SER1"}`), 200, "PUT")
	waitFor(t, "the pre-warm", func() bool {
		e := entryOf(f.cacheList(), sum(data))
		return e != nil && e.State == "complete"
	})
	if n := len(o.requests()); n != 1 {
		t.Errorf("pre-warm: %d origin requests, want 1", n)
	}
	f.boot("b1")
	p := f.plan()
	if want := f.ts.URL + "/cache/" + sum(data) + "/remote.img"; p.Image != want || p.DiskImageSHA != sum(data) {
		t.Errorf("plan image %q sha %q, want %q and the digest", p.Image, p.DiskImageSHA, want)
	}
	toml := f.want(f.do("GET", "/catalog.toml", ""), 200, "catalog").body
	c, err := catalog.Parse("served", []byte(toml))
	if err != nil {
		t.Fatalf("/catalog.toml does not parse: %v\n%s", err, toml)
	}
	for _, e := range c.Images {
		switch e.Name {
		case "remote.img":
			if !strings.HasPrefix(e.Src, f.ts.URL+"/cache/"+sum(data)+"/") || e.SHA256 != sum(data) {
				t.Errorf("/catalog.toml row %+v, want the cache's URL and the digest", e)
			}
		case testImg:
			if e.Src != f.ts.URL+"/images/"+testImg {
				t.Errorf("/catalog.toml own image at %s", e.Src)
			}
		}
	}
	// A machine flashes it through the cache (the flash engine verifies the
	// digest); HEAD works too; the origin is not asked again.
	target := filepath.Join(t.TempDir(), "disk")
	if res, err := flash.Flash(context.Background(), &catalog.HTTPSource{URL: p.Image}, target, flash.Options{SHA256: p.DiskImageSHA}); err != nil || res.SHA256 != sum(data) {
		t.Fatalf("flash through the cache: %v", err)
	}
	if got, _ := os.ReadFile(target); !bytes.Equal(got, data) {
		t.Errorf("the flashed target differs from the image")
	}
	if r := f.do("HEAD", "/cache/"+sum(data)+"/remote.img", ""); r.code != 200 || r.header.Get("Content-Length") != strconv.Itoa(len(data)) {
		t.Errorf("HEAD: %d %v", r.code, r.header)
	}
	if n := len(o.requests()); n != 1 {
		t.Errorf("%d origin requests, want 1", n)
	}
	if m := f.do("GET", "/metrics", "").body; !strings.Contains(m, fmt.Sprintf("bty_cache_origin_bytes_total %d\n", len(data))) || !strings.Contains(m, `bty_cache_images{state="complete"} 1`) {
		t.Errorf("/metrics lacks the cache's lines:\n%s", m)
	}
	// The image the machine read counts as served, once (HEAD does not).
	if m := f.do("GET", "/metrics", "").body; !strings.Contains(m, fmt.Sprintf("bty_served_bytes_total{kind=\"image\"} %d\n", len(data))) || !strings.Contains(m, `bty_served_requests_total{kind="image"} 1`+"\n") {
		t.Errorf("/metrics does not count the one image served from the cache (%d bytes):\n%s", len(data), m)
	}
	for _, bad := range []string{"/cache/" + strings.Repeat("0", 64) + "/x", "/cache/nothex/x", "/cache/ref/" + strings.Repeat("1", 64) + "/x"} {
		if r := f.do("GET", bad, ""); r.code != http.StatusNotFound {
			t.Errorf("GET %s: %d %s, want 404", bad, r.code, r.body)
		}
	}
	// bty fleet cache rm: refused while read, then gone.
	resp, err := http.Get(p.Image)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Read(make([]byte, 10))
	f.want(f.adm("DELETE", "/admin/cache/remote.img", ""), http.StatusConflict, "rm while read")
	resp.Body.Close()
	waitFor(t, "the download to end", func() bool { e := entryOf(f.cacheList(), sum(data)); return e != nil && e.Readers == 0 })
	f.want(f.adm("DELETE", "/admin/cache/remote.img", ""), http.StatusNoContent, "rm")
	f.want(f.adm("DELETE", "/admin/cache/remote.img", ""), http.StatusNotFound, "rm again")
	// bty fleet cache warm fills it again.
	var e wire.CacheEntry
	json.Unmarshal([]byte(f.want(f.adm("POST", "/admin/cache/warm", `{"image":"remote.img"}`), http.StatusAccepted, "warm").body), &e)
	if e.SHA256 != sum(data) {
		t.Errorf("warm answered %+v", e)
	}
	waitFor(t, "the warm", func() bool { e := entryOf(f.cacheList(), sum(data)); return e != nil && e.State == "complete" })
	f.want(f.adm("POST", "/admin/cache/warm", `{"image":"`+testImg+`"}`), http.StatusUnprocessableEntity, "warm an own image")
	f.want(f.adm("POST", "/admin/cache/warm", `{"image":"nope"}`), http.StatusNotFound, "warm an unknown image")
}

// TestCacheNoDigest: an http row without a sha256 is filled under its ref;
// the digest the fill computed is pinned (plans and /images name it), and a
// refresh that finds the origin changed (another ETag) drops the pin: the
// next fill reads the new version.
func TestCacheNoDigest(t *testing.T) {
	v1, v2 := testImage(3<<20, 5), testImage(3<<20, 6)
	o := newOrigin(t, v1)
	f := cacheFixture(t, 0, "version = 1\n"+row("rolling.img", o.ts.URL+"/rolling.img", "", 0))
	ref := refOf(t, o.ts.URL+"/rolling.img")
	f.want(f.adm("PUT", "/machines/"+testMAC, `{"bty_image_ref":"`+ref+`","boot_mode":"bty-flash-always","target_disk_serial":"SER1"}`), 200, "PUT")
	waitFor(t, "the pre-warm", func() bool { e := entryOf(f.cacheList(), sum(v1)); return e != nil && e.State == "complete" })
	if err := f.srv.Refresh(context.Background()); err != nil { // records the pinned digest
		t.Fatal(err)
	}
	f.boot("b1")
	f.want(f.do("HEAD", "/boot/vmlinuz?mac="+wire.HexHyp(testMAC), ""), 200, "HEAD kernel")
	p := f.plan()
	if p.DiskImageSHA != sum(v1) || !strings.Contains(p.Image, "/cache/"+sum(v1)+"/") {
		t.Errorf("plan %+v, want the pinned digest", p)
	}
	if _, err := download(context.Background(), p.Image, 0, v1); err != nil {
		t.Fatal(err)
	}
	f.want(f.status(p, `{"status":"done","plan_id":`+itoa(p.PlanID)+`,"sha256":"`+sum(v1)+`"}`), 204, "status done")
	o.set(v2, `"v2"`)
	if err := f.srv.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := f.srv.cache.pin(ref); got == sum(v1) {
		t.Errorf("after the origin changed, the pin is still the old version's")
	}
	waitFor(t, "the new version", func() bool { e := entryOf(f.cacheList(), sum(v2)); return e != nil && e.State == "complete" })
	if err := f.srv.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := f.srv.cache.pin(ref); got != sum(v2) {
		t.Errorf("pin %s, want the new version's %s", got, sum(v2))
	}
	if kinds := f.kinds(); !has(kinds, "image.changed") || !has(kinds, "machine.stale") || !has(kinds, "cache.dropped") {
		t.Errorf("events %v, want image.changed and the old version dropped", kinds)
	}
	if e := entryOf(f.cacheList(), sum(v1)); e != nil {
		t.Errorf("the old version is still cached: %+v", e)
	}
	// The ref URL serves the pinned version.
	if _, err := download(context.Background(), f.ts.URL+"/cache/ref/"+ref+"/rolling.img", 0, v2); err != nil {
		t.Fatal(err)
	}
}

// TestCacheOras: an oras:// row through the cache against a real registry
// (behind a proxy that counts the blob requests): the tag is resolved at
// the refresh, plans name the layer's digest, machines read it from the
// cache, and the registry serves it once. When the tag moves, the next
// refresh names the new digest and fills it; the old bytes stay while a
// machine reads them or a plan names them, and go at the refresh after.
func TestCacheOras(t *testing.T) {
	reg := catalogtest.StartRegistry(t)
	var blobs atomic.Int64
	target, _ := neturl.Parse("http://" + reg.Host)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			blobs.Add(1)
		}
		httputil.NewSingleHostReverseProxy(target).ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	host := strings.TrimPrefix(proxy.URL, "http://")
	v1, v2 := testImage(24<<20, 7), testImage(1<<20, 8)
	reg.Push(t, "images/disk", "stable", catalogtest.Layer{MediaType: "application/vnd.bty.disk", Title: "disk.img", Data: v1})
	src := "oras://" + host + "/images/disk:stable"
	f := cacheFixture(t, 0, "version = 1\n"+row("disk", src, "", 0))
	ctx := context.Background()
	f.want(f.adm("PUT", "/machines/"+testMAC, `{"bty_image_ref":"`+refOf(t, src)+`","boot_mode":"bty-flash-once","target_disk_serial":"SER1"}`), 200, "PUT")
	if err := f.srv.Refresh(ctx); err != nil { // resolves the tag, records its digest
		t.Fatal(err)
	}
	f.boot("b1")
	p := f.plan()
	if p.DiskImageSHA != sum(v1) || p.Image != f.ts.URL+"/cache/"+sum(v1)+"/disk" {
		t.Fatalf("plan %+v, want the layer's digest through the cache", p)
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = download(ctx, p.Image, 0, v1)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("machine %d: %v", i, err)
		}
	}
	if n := blobs.Load(); n != 1 {
		t.Errorf("the registry got %d blob requests for 4 machines, want 1", n)
	}
	// A machine is still reading v1 when the tag moves.
	resp, err := http.Get(p.Image)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	head := make([]byte, 4096)
	io.ReadFull(resp.Body, head)
	reg.Push(t, "images/disk", "stable", catalogtest.Layer{MediaType: "application/vnd.bty.disk", Title: "disk.img", Data: v2})
	if err := f.srv.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if kinds := f.kinds(); !has(kinds, "image.changed") {
		t.Errorf("events %v, want image.changed", kinds)
	}
	waitFor(t, "the new digest's pre-warm", func() bool { e := entryOf(f.cacheList(), sum(v2)); return e != nil && e.State == "complete" })
	if e := entryOf(f.cacheList(), sum(v1)); e == nil {
		t.Fatal("the old bytes went while a machine read them")
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(append(head, rest...), v1) {
		t.Errorf("the machine reading the old bytes got %d bytes, %v", len(head)+len(rest), err)
	}
	resp.Body.Close()
	waitFor(t, "the download to end", func() bool { e := entryOf(f.cacheList(), sum(v1)); return e != nil && e.Readers == 0 })
	if err := f.srv.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if e := entryOf(f.cacheList(), sum(v1)); e == nil {
		t.Fatal("the old bytes went while a plan named them")
	}
	f.want(f.status(p, `{"status":"done","plan_id":`+itoa(p.PlanID)+`,"sha256":"`+sum(v1)+`"}`), 204, "status")
	if err := f.srv.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if e := entryOf(f.cacheList(), sum(v1)); e != nil {
		t.Errorf("the old bytes stay after the last machine needed them: %+v", e)
	}
	f.boot("b2")
	if p := f.plan(); p.DiskImageSHA != sum(v2) {
		t.Errorf("the next plan names %s, want the moved tag's digest", p.DiskImageSHA)
	}
}

// TestCacheFollowsOtherServer: a refresh asked of one server that finds a
// bound image's digest moved reaches the other servers on the database (a
// store notice): each fills the new version into its own cache before any
// of its machines asks.
func TestCacheFollowsOtherServer(t *testing.T) {
	v1, v2 := testImage(2<<20, 7), testImage(2<<20, 8)
	o := newOrigin(t, v1)
	var opts Options
	f := cacheFixture(t, 0, "version = 1\n"+row("moving.img", o.ts.URL+"/moving.img", sum(v1), 0), func(o *Options) { opts = *o })
	cache, err := OpenCache(filepath.Join(t.TempDir(), "cache"), 0)
	if err != nil {
		t.Fatal(err)
	}
	opts.Cache = cache
	opts.Catalog = catalog.NewServer(catalog.ServerOptions{Dir: opts.ImagesDir})
	other := New(opts)
	ts := httptest.NewServer(other)
	t.Cleanup(func() { ts.Close(); other.Close() })
	if err := other.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	go other.Run(t.Context(), 0)
	otherHas := func(sha string) bool {
		req, _ := http.NewRequest("GET", ts.URL+"/admin/cache", nil)
		req.Header.Set("Authorization", "Bearer "+f.admin)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer res.Body.Close()
		var c wire.Cache
		json.NewDecoder(res.Body).Decode(&c)
		e := entryOf(c, sha)
		return e != nil && e.State == "complete"
	}

	ref := refOf(t, o.ts.URL+"/moving.img")
	f.want(f.adm("PUT", "/machines/"+testMAC, `{"bty_image_ref":"`+ref+`","boot_mode":"bty-flash-always","target_disk_serial":"SER1"}`), 200, "PUT")
	waitFor(t, "the pre-warm of v1", func() bool { e := entryOf(f.cacheList(), sum(v1)); return e != nil && e.State == "complete" })
	if otherHas(sum(v1)) {
		t.Fatalf("the other server's cache holds v1: pre-warming is per server")
	}

	o.set(v2, `"v2"`)
	path := opts.CatalogSources[0]
	if err := os.WriteFile(path, []byte("version = 1\n"+row("moving.img", o.ts.URL+"/moving.img", sum(v2), 0)), 0o644); err != nil {
		t.Fatal(err)
	}
	f.want(f.adm("POST", "/admin/catalogs/refresh", ""), 204, "refresh")
	waitFor(t, "the other server's pre-warm of v2", func() bool { return otherHas(sum(v2)) })
	waitFor(t, "this server's pre-warm of v2", func() bool { e := entryOf(f.cacheList(), sum(v2)); return e != nil && e.State == "complete" })
}
