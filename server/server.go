package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"bty/catalog"
	"bty/server/store"
	"bty/server/web"
	"bty/wire"
)

// Options configure New.
type Options struct {
	// Store holds the fleet's state.
	Store store.Store
	// Catalog serves /catalog.toml and /images/<name>, and lists the images
	// machines are bound to.
	Catalog *catalog.Server
	// ImagesDir is the catalog's image directory: its rows are this server's
	// own images, whose URLs follow the request's host.
	ImagesDir string
	// BaseURL is the server's canonical address: the refs of its own images
	// are those of their URLs under it, so they do not change with the name a
	// client uses. Required.
	BaseURL string
	// CatalogSources are the --catalog sources, re-read by Refresh;
	// Resolver reads them and resolves oras:// tags.
	CatalogSources []string
	Resolver       *catalog.Resolver
	// BootDir holds the live environment's files (bty media netboot --out);
	// "" serves none. Kernel and Initrd are their names in it.
	BootDir        string
	Kernel, Initrd string
	// IPXEDir holds the iPXE binaries (bty serve --pxe): ipxe.efi and
	// snponly.efi are served under /boot/ from it when BootDir has none, for
	// UEFI HTTP boot. "" serves none.
	IPXEDir string
	// Version is the body of GET /version; "" means "bty".
	Version string
	// Retries is how often a failed flash is tried again before the machine
	// is quarantined; negative means 0, and the zero value means 2.
	Retries int
	// QuarantineWizard: a quarantined machine gets the wizard instead of its
	// local disk.
	QuarantineWizard bool
	// EventsKeep and EventsMaxAge bound the event log (and old cycles and
	// offers); zero keeps everything.
	EventsKeep   int
	EventsMaxAge time.Duration
	// Log gets one line per request and the server's notices; nil means none.
	Log io.Writer
	// Now returns the time; nil means time.Now. Tests move it.
	Now func() time.Time
	// PasswordFile is where EnsurePassword put the web UI's first-start
	// password; it is deleted when the password changes. "" means none.
	PasswordFile string
	// PXEResponder says, for the dashboard, what answers machines' PXE
	// requests beside the HTTP routes; "" means nothing does (the site's
	// DHCP server chains them to /pxe-bootstrap.ipxe).
	PXEResponder string
	// Cache is the image fan-out cache (OpenCache); nil means machines read
	// remote images from their origins.
	Cache *Cache
}

// Server is the fleet server: the machine-facing PXE routes, the admin API,
// the events and the metrics, over the read-only catalog.
type Server struct {
	opt     Options
	mux     *http.ServeMux
	images  *imageIndex
	metrics *metrics
	logMu   sync.Mutex
	ctx     context.Context // for work that outlives a request (power actions)
	cancel  context.CancelFunc
	bg      sync.WaitGroup
	id      string              // this server among those on one database (store notices)
	changes <-chan store.Change // the store's notices, for Run
	ui      *web.UI
	cache   *Cache // nil without one
}

// New returns a Server for opt.
func New(opt Options) *Server {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	switch {
	case opt.Retries == 0:
		opt.Retries = 2
	case opt.Retries < 0:
		opt.Retries = 0
	}
	opt.BaseURL = strings.TrimSuffix(opt.BaseURL, "/")
	s := &Server{opt: opt, mux: http.NewServeMux(), metrics: newMetrics(), id: randomID()}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.changes = opt.Store.Changes(s.ctx)
	s.ui = web.New(web.Options{Store: opt.Store, Fleet: s, API: s.mux, PasswordFile: opt.PasswordFile, Now: opt.Now, Logf: s.logf})
	s.opt.Store = notifying{opt.Store, s.ui.Changed}
	s.images = &imageIndex{srv: opt.Catalog, base: opt.BaseURL, dir: opt.ImagesDir, sources: opt.CatalogSources, resolver: opt.Resolver}
	if opt.Cache != nil {
		s.useCache(opt.Cache)
	}
	s.routes()
	return s
}

// Close stops the background work (power actions, the pruner, the cache's
// fills) and waits for it.
func (s *Server) Close() {
	s.cancel()
	s.bg.Wait()
	if s.cache != nil {
		s.cache.fills.Wait()
	}
}

func (s *Server) routes() {
	m := s.mux
	// Open: what firmware, iPXE and the live environment fetch.
	m.HandleFunc("GET /pxe-bootstrap.ipxe", s.bootstrap)
	m.HandleFunc("GET /pxe/{mac}", s.pxe)
	m.HandleFunc("GET /pxe/{mac}/plan", s.plan)
	m.HandleFunc("POST /pxe/{mac}/status", s.status)
	m.HandleFunc("POST /pxe/{mac}/inventory", s.inventory)
	m.HandleFunc("POST /pxe/{mac}/progress", s.progress)
	m.HandleFunc("GET /boot/{name}", s.bootFile)
	m.HandleFunc("GET /images", s.listImages)
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	m.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"version": s.version()})
	})
	m.HandleFunc("GET /metrics", s.serveMetrics)
	// Admin: Authorization: Bearer TOKEN.
	m.HandleFunc("GET /machines", s.admin(s.listMachines))
	m.HandleFunc("GET /machines/{mac}", s.admin(s.getMachine))
	m.HandleFunc("PUT /machines/{mac}", s.admin(s.putMachine))
	m.HandleFunc("PATCH /machines/{mac}", s.admin(s.patchMachine))
	m.HandleFunc("DELETE /machines/{mac}", s.admin(s.deleteMachine))
	m.HandleFunc("GET /machines/{mac}/lshw.json", s.admin(s.machineBlob("lshw")))
	m.HandleFunc("GET /machines/{mac}/disks.json", s.admin(s.machineBlob("disks")))
	m.HandleFunc("GET /machines/{mac}/cycles", s.admin(s.listCycles))
	m.HandleFunc("GET /machines/{mac}/cycles/{id}", s.admin(s.getCycle))
	m.HandleFunc("POST /machines/{mac}/reflash", s.admin(s.reflash))
	m.HandleFunc("GET /events", s.admin(s.listEvents))
	m.HandleFunc("POST /events/{id}/ack", s.admin(s.ackEvent))
	m.HandleFunc("POST /tokens", s.admin(s.createToken))
	m.HandleFunc("DELETE /tokens/{name}", s.admin(s.revokeToken))
	m.HandleFunc("POST /admin/catalogs/refresh", s.admin(s.refreshCatalogs))
	m.HandleFunc("PUT /admin/password", s.admin(func(w http.ResponseWriter, r *http.Request) { s.ui.SetPassword(w, r, actor(r)) }))
	s.cacheRoutes(m)
	s.rolloutRoutes(m)
	// The web UI (bty-web's / sends browsers to it).
	m.Handle("/ui/", s.ui)
	m.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ui/", http.StatusSeeOther) })
	// The rest is the catalog's: /catalog.toml, /images/<name>.
	if s.opt.Catalog != nil {
		m.Handle("/", s.opt.Catalog)
	}
}

func (s *Server) version() string {
	if s.opt.Version == "" {
		return "bty"
	}
	return s.opt.Version
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	s.mux.ServeHTTP(rec, r)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	route := r.Pattern
	if route == "" {
		route = "other"
	}
	s.metrics.request(route, rec.status)
	if cachedImageRoutes[route] && r.Method == http.MethodGet && rec.status/100 == 2 && s.opt.Catalog != nil {
		s.opt.Catalog.Served(catalog.ServedImage, rec.n) // the catalog counts its own
	}
	if s.opt.Log != nil {
		s.logMu.Lock()
		fmt.Fprintf(s.opt.Log, "%s %s %d %s %s\n", r.Method, r.URL.RequestURI(), rec.status, time.Since(start).Round(time.Microsecond), r.RemoteAddr)
		s.logMu.Unlock()
	}
}

// statusRecorder keeps the status and body size of a response; ReadFrom
// passes through so that file responses still use sendfile.
type statusRecorder struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *statusRecorder) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := io.Copy(w.ResponseWriter, r)
	w.n += n
	return n, err
}

func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) logf(format string, args ...any) {
	if s.opt.Log != nil {
		s.logMu.Lock()
		fmt.Fprintf(s.opt.Log, "bty serve: "+format+"\n", args...)
		s.logMu.Unlock()
	}
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// httpError is an answer that is not a success: {"detail": Msg}.
type httpError struct {
	Code int
	Msg  string
}

func (e *httpError) Error() string { return e.Msg }

func errorf(code int, format string, args ...any) *httpError {
	return &httpError{code, fmt.Sprintf(format, args...)}
}

// writeErr answers with err: its code for an *httpError, else 500 (503 when
// the database is busy).
func (s *Server) writeErr(w http.ResponseWriter, err error) {
	var he *httpError
	if errors.As(err, &he) {
		writeJSON(w, he.Code, wire.Error{Detail: he.Msg})
		return
	}
	s.logf("error: %v", err)
	code := http.StatusInternalServerError
	if store.IsBusy(err) {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, wire.Error{Detail: err.Error()})
}

// decode reads a JSON body strictly (unknown fields refused, bty-web's
// extra=forbid) into v, at most limit bytes. A bad body is a 422.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errorf(http.StatusRequestEntityTooLarge, "the body is larger than %d bytes", limit)
		}
		return errorf(http.StatusUnprocessableEntity, "bad body: %v", err)
	}
	if dec.More() {
		return errorf(http.StatusUnprocessableEntity, "bad body: more than one JSON value")
	}
	return nil
}

// pathMAC normalises the {mac} of the path; a bad one is a 400.
func pathMAC(r *http.Request) (string, error) {
	mac, err := wire.NormalizeMAC(r.PathValue("mac"))
	if err != nil {
		return "", errorf(http.StatusBadRequest, "%v", err)
	}
	return mac, nil
}

// base is the URL of this server as the client reached it (bty-web: the Host
// header).
func base(r *http.Request) string { return "http://" + r.Host }

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// newToken returns a random token and its hash as stored.
func newToken() (token, hash string) {
	b := make([]byte, 32)
	rand.Read(b)
	token = hex.EncodeToString(b)
	return token, hashToken(token)
}

func hashToken(t string) string { return store.HashToken(t) }

// bearer returns the token of an Authorization: Bearer header, or "".
func bearer(r *http.Request) string {
	kind, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(kind, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

type actorKey struct{}

// admin wraps an admin route: a valid API token is required; its name is the
// actor of the events the request causes.
func (s *Server) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok := bearer(r)
		if tok == "" {
			// A session of the web UI: an agent that logged in at
			// /ui/login (bty-web's way), or the UI's own forms.
			who, err := s.ui.Authenticate(r)
			switch {
			case err == nil:
				h(w, r.WithContext(context.WithValue(r.Context(), actorKey{}, who)))
				return
			case errors.Is(err, web.ErrCrossOrigin):
				writeJSON(w, http.StatusForbidden, wire.Error{Detail: err.Error()})
				return
			case !errors.Is(err, web.ErrNoSession):
				s.writeErr(w, err)
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="bty"`)
			writeJSON(w, http.StatusUnauthorized, wire.Error{Detail: "login required: send Authorization: Bearer TOKEN (the admin token is in the server's STATE/admin.token)"})
			return
		}
		var name string
		err := s.opt.Store.View(r.Context(), func(tx *store.Tx) (err error) {
			name, err = tx.TokenName(hashToken(tok))
			return err
		})
		if errors.Is(err, store.ErrNotFound) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="bty", error="invalid_token"`)
			writeJSON(w, http.StatusUnauthorized, wire.Error{Detail: "the token is not valid (revoked, or from another server)"})
			return
		}
		if err != nil {
			s.writeErr(w, err)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), actorKey{}, name)))
	}
}

func actor(r *http.Request) string {
	if a, ok := r.Context().Value(actorKey{}).(string); ok {
		return a
	}
	return "pxe-client"
}

// EnsureAdminToken creates the admin token on first start: when the store has
// no token, a new one named "admin" is written to dir/admin.token (mode
// 0600; dir is made if need be). It returns the file's path when it made one.
func EnsureAdminToken(ctx context.Context, st store.Store, dir string, now time.Time) (string, error) {
	path := filepath.Join(dir, "admin.token")
	made, wrote := false, ""
	err := st.Update(ctx, func(tx *store.Tx) error {
		made = false
		n, err := tx.Tokens()
		if err != nil || n > 0 {
			return err
		}
		tok, hash := newToken()
		if err := tx.AddToken("admin", hash, now); errors.Is(err, store.ErrExists) {
			return nil // another server made it since Tokens looked
		} else if err != nil {
			return err
		}
		// Written before the commit: a token in the database is never one
		// nobody has.
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		if err := writeSecret(path, tok+"\n"); err != nil {
			return err
		}
		made, wrote = true, tok+"\n"
		return nil
	})
	if !made && wrote != "" {
		// This run's token lost to another server's, which started at the
		// same moment: the file must not keep a token nobody can use.
		if b, _ := os.ReadFile(path); string(b) == wrote {
			os.Remove(path)
		}
	}
	if err != nil || !made {
		return "", err
	}
	return path, nil
}

// EnsurePassword sets the web UI's password on first start: when the store
// has none, it takes password (bty serve passes BTY_ADMIN_PASSWORD, bty-web's
// variable) or, when that is "", makes one and writes it to
// dir/admin.password (mode 0600). It returns the file's path when it made
// one.
func EnsurePassword(ctx context.Context, st store.Store, dir, password string, now time.Time) (string, error) {
	var set bool
	err := st.View(ctx, func(tx *store.Tx) error {
		_, err := tx.Setting(web.PasswordSetting)
		set = err == nil
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil || set {
		return "", err
	}
	path := ""
	if password == "" {
		password, path = randomID()+randomID(), filepath.Join(dir, "admin.password")
	} else if err := web.ValidPassword(password); err != nil {
		return "", fmt.Errorf("BTY_ADMIN_PASSWORD: %w", err)
	}
	hash, err := web.HashPassword(password)
	if err != nil {
		return "", err
	}
	made, wrote := false, false
	err = st.Update(ctx, func(tx *store.Tx) error {
		made = false
		if _, err := tx.Setting(web.PasswordSetting); err == nil {
			return nil // another server set it meanwhile
		}
		// The row first: a server starting at the same moment waits for it
		// and then finds it (its rerun), before it writes the file.
		if err := tx.PutSetting(web.PasswordSetting, hash, now); err != nil {
			return err
		}
		// Written before the commit, as the admin token.
		if path != "" {
			if err := writeSecret(path, password+"\n"); err != nil {
				return err
			}
			wrote = true
		}
		made = true
		return nil
	})
	if !made && wrote {
		// This run's password lost to another server's after all (its
		// commit failed, or it was rerun): the file must not keep one that
		// is not valid.
		if b, _ := os.ReadFile(path); string(b) == password+"\n" {
			os.Remove(path)
		}
	}
	if err != nil || !made {
		return "", err
	}
	return path, nil
}

// writeSecret writes data to path with mode 0600, atomically.
func writeSecret(path, data string) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteString(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
