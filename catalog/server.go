package catalog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"bty/blockindex"
)

// ServerOptions configure NewServer.
type ServerOptions struct {
	// Dir is the image directory served under /images/ and listed in
	// /catalog.toml (the image root rules of docs/catalog.md, the image root).
	Dir string
	// Catalogs are listed in /catalog.toml after Dir's images, one row per ref.
	Catalogs []*Catalog
	// Version is the body of GET /version; "" means "bty".
	Version string
	// Log gets one line per request; nil means no log.
	Log io.Writer
	// BaseURL is the URL clients reach this server at, used in the src of
	// Dir's images; "" means http://<the request's Host>.
	BaseURL string
	// Wait bounds how long GET /catalog.toml waits for the digests of small
	// images (up to waitMaxSize) before it lists them as pending; zero
	// means 1 s. It never waits for a larger image.
	Wait time.Duration
	// ProgressEvery is the least time between two progress lines of one
	// image's hashing in the log; zero means 10 s.
	ProgressEvery time.Duration
	// Blocks, when set, is the block store of delta reflash: every image of
	// Dir is indexed once (in the background, cached like its digest), its
	// blocks are stored there, its catalog row names its block index, and
	// GET /blocks/ serves the indexes and blocks (docs/delta.md). nil means
	// no block indexes.
	Blocks *blockindex.Store
	// Decode opens the decoded image of the compressed image file at path,
	// for its block index; nil means compressed images get no index (raw
	// images are read as they are).
	Decode func(ctx context.Context, path string) (io.ReadCloser, error)
}

// Server is bty serve's read-only HTTP catalog: GET /catalog.toml, GET|HEAD
// /images/<name> with Range and ETag, GET /healthz, GET /version, GET
// /metrics (what it served). Names that leave Dir, symlinks, hidden and
// non-regular files are refused.
//
// Digests are computed in the background, one file at a time, and logged
// with their progress; /catalog.toml never waits for long: an image whose
// digest is not known yet is listed under [[pending_images]], which clients
// that do not know it ignore.
type Server struct {
	opt     ServerOptions
	hashes  hashCache
	indexes hashCache // of the block indexes: the sha256 of each encoded index
	served  served
	logMu   sync.Mutex
	catMu   sync.Mutex // guards opt.Catalogs, which SetCatalogs replaces
}

// SetCatalogs replaces the catalogs listed after Dir's images (the fleet
// server re-reads its catalogs while it runs).
func (s *Server) SetCatalogs(cs []*Catalog) {
	s.catMu.Lock()
	s.opt.Catalogs = cs
	s.catMu.Unlock()
}

// NewServer returns a Server for opt. Call Warm to hash the images ahead of
// the first /catalog.toml.
func NewServer(opt ServerOptions) *Server {
	s := &Server{opt: opt}
	if s.opt.Wait <= 0 {
		s.opt.Wait = time.Second
	}
	if s.opt.ProgressEvery <= 0 {
		s.opt.ProgressEvery = 10 * time.Second
	}
	s.hashes = hashCache{
		done: map[hashKey]string{}, running: map[hashKey]*hashCall{},
		logf: s.logf, every: s.opt.ProgressEvery,
	}
	s.hashes.run = s.hashes.hashFile
	s.indexes = hashCache{done: map[hashKey]string{}, running: map[hashKey]*hashCall{}, run: s.indexFile}
	return s
}

// logf writes one line to the log.
func (s *Server) logf(format string, args ...any) {
	if s.opt.Log == nil {
		return
	}
	s.logMu.Lock()
	defer s.logMu.Unlock()
	fmt.Fprintf(s.opt.Log, format+"\n", args...)
}

// Warm hashes (and with Blocks, indexes) every image of Dir, smallest first,
// and returns when all are done or ctx ends.
func (s *Server) Warm(ctx context.Context) {
	files, err := s.localFiles()
	if err != nil {
		s.logf("bty serve: %v", err)
		return
	}
	for _, f := range files {
		for _, c := range []*hashCall{f.call, f.icall} {
			if c == nil {
				continue
			}
			select {
			case <-c.finished:
			case <-ctx.Done():
				return
			}
		}
	}
}

// localFile is an image of Dir and the computation of its digest.
type localFile struct {
	e    Entry
	key  hashKey
	sum  string    // the digest, when it was known
	call *hashCall // nil when the digest was known
	// index is the digest of the block index, when it was known; icall
	// computes it (nil when it was known, or without a block store).
	index string
	icall *hashCall
}

// localFiles scans Dir and queues the hashing of the images whose digest is
// not known (hashCache takes the smallest first: many small images get their
// digests before one large image takes its minutes).
func (s *Server) localFiles() ([]*localFile, error) {
	local, err := ScanRoot(s.opt.Dir)
	if err != nil {
		return nil, err
	}
	var files []*localFile
	for _, e := range local {
		fi, err := os.Lstat(e.Src)
		if err != nil {
			continue // removed since the scan
		}
		e.Size = fi.Size()
		files = append(files, &localFile{e: e, key: keyOf(e.Name, fi)})
	}
	for _, f := range files {
		f.sum, f.call = s.hashes.start(f.e.Src, f.key)
		if s.opt.Blocks != nil {
			f.index, f.icall = s.indexes.start(f.e.Src, f.key)
		}
	}
	return files, nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	lw := &logWriter{ResponseWriter: w}
	s.route(lw, r)
	s.countServed(r, lw)
	if s.opt.Log != nil {
		status := lw.status
		if status == 0 {
			status = http.StatusOK
		}
		s.logf("%s %s %d %d %s %s", r.Method, r.URL.RequestURI(), status, lw.n, time.Since(start).Round(time.Microsecond), r.RemoteAddr)
	}
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "read-only: only GET and HEAD", http.StatusMethodNotAllowed)
		return
	}
	switch p := r.URL.Path; {
	case p == "/catalog.toml":
		s.serveCatalog(w, r)
	case p == "/healthz":
		// JSON, as bty-web's: a JSON client parses it, and a script that
		// checks the status code or greps for ok still works.
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok"}`+"\n")
	case p == "/metrics":
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		s.WriteMetrics(w)
	case p == "/version":
		v := s.opt.Version
		if v == "" {
			v = "bty"
		}
		w.Header().Set("Content-Type", "application/json")
		b, _ := json.Marshal(map[string]string{"version": v})
		w.Write(append(b, '\n'))
	case strings.HasPrefix(p, "/images/"):
		s.serveImage(w, r, strings.TrimPrefix(p, "/images/"))
	case strings.HasPrefix(p, "/blocks/") && s.opt.Blocks != nil:
		s.serveBlock(w, r, strings.TrimPrefix(p, "/blocks/"))
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) baseURL(r *http.Request) string {
	if s.opt.BaseURL != "" {
		return strings.TrimSuffix(s.opt.BaseURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// waitMaxSize is the largest image whose digest GET /catalog.toml waits for
// (ServerOptions.Wait): hashing 64 MiB takes 0.3-0.4 s here (160-230 MiB/s
// measured on a sparse 40 GiB file on the bench VM), so a catalog asked for
// right after bty serve starts lists small images with their digests, while
// a large one never holds up the answer.
const waitMaxSize = 64 << 20

// Entries lists Dir's images (src under base, sha256 computed or cached) and
// then the catalogs' entries, one row per ref. It starts hashing the images
// whose digest is not known, waits for the small ones at most
// ServerOptions.Wait, and lists those still being hashed as Pending. An image
// that cannot be read is left out, rather than listed without a digest.
func (s *Server) Entries(ctx context.Context, base string) ([]Entry, error) {
	files, err := s.localFiles()
	if err != nil {
		return nil, err
	}
	wait := time.NewTimer(s.opt.Wait)
	defer wait.Stop()
waiting:
	for _, f := range files {
		if f.call == nil || f.e.Size > waitMaxSize {
			continue
		}
		select {
		case <-f.call.finished:
		case <-wait.C:
			break waiting
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	var rows []Entry
	for _, f := range files {
		e := f.e
		e.SHA256 = f.sum
		if f.call != nil {
			select {
			case <-f.call.finished:
				if f.call.err != nil {
					continue // unreadable, or changed while hashed: logged
				}
				e.SHA256 = f.call.sum
			default:
				e.Pending = true
			}
		}
		e.Src = base + "/images/" + url.PathEscape(e.Name)
		if index := f.done(f.index, f.icall); index != "" && !e.Pending {
			e.BlockIndex = base + "/blocks/" + strings.TrimPrefix(index, "sha256:") + ".index"
			e.BlockIndexDigest = index
		}
		if e.Ref, err = Ref(e.Src); err != nil {
			return nil, err
		}
		e.From = s.opt.Dir
		rows = append(rows, e)
	}
	lists := [][]Entry{rows}
	s.catMu.Lock()
	cats := s.opt.Catalogs
	s.catMu.Unlock()
	for _, c := range cats {
		lists = append(lists, c.Images)
	}
	return Merge(lists...), nil
}

func (s *Server) serveCatalog(w http.ResponseWriter, r *http.Request) {
	rows, err := s.Entries(r.Context(), s.baseURL(r))
	if err != nil {
		http.Error(w, "cannot list the images", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := Encode(&buf, rows); err != nil {
		http.Error(w, "cannot encode the catalog", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/toml; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "catalog.toml", time.Time{}, bytes.NewReader(buf.Bytes()))
}

// validName accepts a plain file name directly in Dir: no separators, no NUL,
// not hidden (which also excludes "." and "..").
func validName(name string) (ok bool, status int) {
	switch {
	case name == "":
		return false, http.StatusNotFound
	case strings.ContainsAny(name, "/\\\x00"):
		return false, http.StatusBadRequest
	case strings.HasPrefix(name, "."):
		return false, http.StatusNotFound
	}
	return true, 0
}

func (s *Server) serveImage(w http.ResponseWriter, r *http.Request, name string) {
	if ok, status := validName(name); !ok {
		http.Error(w, http.StatusText(status), status)
		return
	}
	path := filepath.Join(s.opt.Dir, name)
	f, err := openNoFollow(path)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	key := keyOf(name, fi)
	weak := fmt.Sprintf(`"%x-%x"`, fi.Size(), fi.ModTime().UnixNano())
	etag := weak
	if sum, ok := s.hashes.known(key); ok {
		etag = `"sha256:` + sum + `"`
		// A client that started with the size-mtime tag, before the digest was
		// known, resumes against the same tag: the file is unchanged.
		for _, h := range []string{"If-Range", "If-Match", "If-None-Match"} {
			if r.Header.Get(h) == weak {
				etag = weak
			}
		}
	}
	w.Header().Set("ETag", etag)
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, name, fi.ModTime(), f)
}

// logWriter records the status and body size of a response. It passes
// ReadFrom through so that http.ServeContent still uses sendfile.
type logWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *logWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *logWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *logWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(w.ResponseWriter, r)
	}
	w.n += n
	return n, err
}

func (w *logWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// hashKey identifies one version of a file: a changed size or mtime is a new
// file to hash.
type hashKey struct {
	name  string
	size  int64
	mtime int64
}

func keyOf(name string, fi os.FileInfo) hashKey {
	return hashKey{name, fi.Size(), fi.ModTime().UnixNano()}
}

// hashCache computes each file's sha256 (or, for the block indexes, the
// sha256 of its encoded index) once, one file at a time (reading
// several large files at once would only make each slower), the smallest
// queued file first; concurrent askers share one computation.
type hashCache struct {
	run     func(path string, k hashKey) (string, error) // the computation
	mu      sync.Mutex
	done    map[hashKey]string
	running map[hashKey]*hashCall // queued or being hashed
	queue   []*hashCall           // queued, not yet being hashed
	working bool                  // a worker goroutine is hashing the queue
	logf    func(format string, args ...any)
	every   time.Duration // least time between progress lines
	// slow, when set, wraps the file a computation reads; tests use it to
	// hold a computation at a point of their choosing.
	slow func(io.Reader) io.Reader
}

type hashCall struct {
	path     string
	key      hashKey
	finished chan struct{}
	sum      string
	err      error
}

func (c *hashCache) known(k hashKey) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sum, ok := c.done[k]
	return sum, ok
}

// start returns the digest of version k of path when it is known, else
// the computation of it, queued unless it was already. The computation does
// not depend on who asked: it runs on for the next.
func (c *hashCache) start(path string, k hashKey) (string, *hashCall) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sum, ok := c.done[k]; ok {
		return sum, nil
	}
	call, ok := c.running[k]
	if !ok {
		call = &hashCall{path: path, key: k, finished: make(chan struct{})}
		c.running[k] = call
		c.queue = append(c.queue, call)
		if !c.working {
			c.working = true
			go c.work()
		}
	}
	return "", call
}

// work hashes the queued files, the smallest first, until none is left.
func (c *hashCache) work() {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.working = false
			c.mu.Unlock()
			return
		}
		i := 0
		for j, q := range c.queue {
			if q.key.size < c.queue[i].key.size {
				i = j
			}
		}
		call := c.queue[i]
		c.queue = slices.Delete(c.queue, i, i+1)
		c.mu.Unlock()

		call.sum, call.err = c.run(call.path, call.key)
		c.mu.Lock()
		delete(c.running, call.key)
		if call.err == nil {
			for old := range c.done {
				if old.name == call.key.name {
					delete(c.done, old)
				}
			}
			c.done[call.key] = call.sum
		}
		c.mu.Unlock()
		close(call.finished)
	}
}

// hashFile hashes path, logging its progress, and checks that it is still
// version k afterwards, so a file rewritten during the hash is not cached
// under the old key.
func (c *hashCache) hashFile(path string, k hashKey) (string, error) {
	const mib = 1 << 20
	start := time.Now()
	fail := func(err error) (string, error) {
		c.logf("bty serve: cannot hash %s: %v; it is left out of the catalog", k.name, err)
		return "", err
	}
	f, err := openNoFollow(path)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	c.logf("bty serve: hashing %s (%.1f MiB)", k.name, float64(k.size)/mib)
	var r io.Reader = f
	if c.slow != nil {
		r = c.slow(r)
	}
	h := sha256.New()
	p := &hashProgress{c: c, name: k.name, size: k.size, start: start, last: start}
	if _, err := io.CopyBuffer(io.MultiWriter(h, p), r, make([]byte, 1<<20)); err != nil {
		return fail(fmt.Errorf("read %s: %w", path, err))
	}
	fi, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	if keyOf(k.name, fi) != k {
		return fail(fmt.Errorf("%s changed while it was hashed (it is hashed again when next listed)", path))
	}
	d := time.Since(start)
	rate := ""
	if p.n >= mib {
		rate = fmt.Sprintf(" (%.0f MiB/s)", float64(p.n)/mib/max(d.Seconds(), 1e-6))
	}
	// Three or four significant digits: 780µs, 1.502s, 3m2.1s.
	c.logf("bty serve: hashed %s in %s%s", k.name, d.Round(min(max(d/1000, time.Microsecond), 100*time.Millisecond)), rate)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashProgress logs a hash's progress at most every c.every.
type hashProgress struct {
	c           *hashCache
	name        string
	size, n     int64
	start, last time.Time
}

func (p *hashProgress) Write(b []byte) (int, error) {
	const mib = 1 << 20
	p.n += int64(len(b))
	if now := time.Now(); now.Sub(p.last) >= p.c.every && p.n < p.size {
		p.last = now
		p.c.logf("bty serve: hashing %s: %d%% (%.1f of %.1f MiB, %.0f MiB/s)", p.name, p.n*100/max(p.size, 1),
			float64(p.n)/mib, float64(p.size)/mib, float64(p.n)/mib/max(now.Sub(p.start).Seconds(), 1e-3))
	}
	return len(b), nil
}
