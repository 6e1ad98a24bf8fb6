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
	"strings"
	"sync"
	"time"
)

// ServerOptions configure NewServer.
type ServerOptions struct {
	// Dir is the image directory served under /images/ and listed in
	// /catalog.toml (the image root rules of WIRE.md section 3).
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
}

// Server is bty serve's read-only HTTP catalog: GET /catalog.toml, GET|HEAD
// /images/<name> with Range and ETag, GET /healthz, GET /version. Names that
// leave Dir, symlinks, hidden and non-regular files are refused.
type Server struct {
	opt    ServerOptions
	hashes hashCache
	logMu  sync.Mutex
	catMu  sync.Mutex // guards opt.Catalogs, which SetCatalogs replaces
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
	return &Server{opt: opt, hashes: hashCache{done: map[hashKey]string{}, running: map[hashKey]*hashCall{}}}
}

// Warm hashes every image of Dir, one at a time, until done or ctx ends, so
// that /catalog.toml answers at once.
func (s *Server) Warm(ctx context.Context) {
	entries, err := ScanRoot(s.opt.Dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		fi, err := os.Lstat(e.Src)
		if err != nil || ctx.Err() != nil {
			continue
		}
		s.hashes.get(ctx, e.Src, keyOf(e.Name, fi))
	}
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	lw := &logWriter{ResponseWriter: w}
	s.route(lw, r)
	if s.opt.Log != nil {
		status := lw.status
		if status == 0 {
			status = http.StatusOK
		}
		s.logMu.Lock()
		fmt.Fprintf(s.opt.Log, "%s %s %d %d %s %s\n", r.Method, r.URL.RequestURI(), status, lw.n, time.Since(start).Round(time.Microsecond), r.RemoteAddr)
		s.logMu.Unlock()
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

// Entries lists Dir's images (src under base, sha256 computed or cached) and
// then the catalogs' entries, one row per ref.
func (s *Server) Entries(ctx context.Context, base string) ([]Entry, error) {
	local, err := ScanRoot(s.opt.Dir)
	if err != nil {
		return nil, err
	}
	var rows []Entry
	for _, e := range local {
		fi, err := os.Lstat(e.Src)
		if err != nil {
			continue // removed since the scan
		}
		sum, err := s.hashes.get(ctx, e.Src, keyOf(e.Name, fi))
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			continue // unreadable: leave it out rather than list it without a digest
		}
		src := base + "/images/" + url.PathEscape(e.Name)
		ref, err := Ref(src)
		if err != nil {
			return nil, err
		}
		rows = append(rows, Entry{Name: e.Name, Src: src, SHA256: sum, Format: e.Format, Size: fi.Size(), Ref: ref, From: s.opt.Dir})
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

// hashCache computes each file's sha256 once; concurrent askers share one
// computation.
type hashCache struct {
	mu      sync.Mutex
	done    map[hashKey]string
	running map[hashKey]*hashCall
}

type hashCall struct {
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

// get returns the sha256 of path for version k, computing it if needed. The
// computation runs on even if ctx ends, for the next asker.
func (c *hashCache) get(ctx context.Context, path string, k hashKey) (string, error) {
	c.mu.Lock()
	if sum, ok := c.done[k]; ok {
		c.mu.Unlock()
		return sum, nil
	}
	call, ok := c.running[k]
	if !ok {
		call = &hashCall{finished: make(chan struct{})}
		c.running[k] = call
		go c.compute(path, k, call)
	}
	c.mu.Unlock()
	select {
	case <-call.finished:
		return call.sum, call.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (c *hashCache) compute(path string, k hashKey, call *hashCall) {
	call.sum, call.err = hashFile(path, k)
	c.mu.Lock()
	delete(c.running, k)
	if call.err == nil {
		for old := range c.done {
			if old.name == k.name {
				delete(c.done, old)
			}
		}
		c.done[k] = call.sum
	}
	c.mu.Unlock()
	close(call.finished)
}

// hashFile hashes path and checks that it is still version k afterwards, so a
// file rewritten during the hash is not cached under the old key.
func hashFile(path string, k hashKey) (string, error) {
	f, err := openNoFollow(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if keyOf(k.name, fi) != k {
		return "", fmt.Errorf("hash %s: the file changed while it was hashed", path)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
