package web

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"bty/server/store"
	"bty/wire"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Fleet is what the pages read through the fleet server (*server.Server):
// the machines with their states (which need the server's rules), one
// machine as the API shows it, the images of the catalogs, and the server's
// health.
type Fleet interface {
	Summaries(ctx context.Context) ([]Summary, error)
	Machine(ctx context.Context, mac, base string) (wire.Machine, error)
	Images(ctx context.Context, base string) ([]wire.ImageEntry, error)
	Health() Health
}

// Summary is a machine as the lists show it: its row (without the lshw
// tree), its latest cycle, its state by the server's rules, and the name of
// its assigned image ("" when that is in no catalog).
type Summary struct {
	Machine *store.Machine
	Cycle   *store.Cycle
	State   string
	Image   string
}

// Health is what the dashboard says about the server itself.
type Health struct {
	Version string
	// BootFiles are the live environment's files: present or not.
	BootFiles []BootFile
	// Catalogs are the --catalog sources (the image directory is always read).
	Catalogs []string
	// PXE says what answers PXE besides HTTP ("" none: the site's DHCP
	// server chains machines to /pxe-bootstrap.ipxe).
	PXE string
}

// BootFile is one file of the live environment.
type BootFile struct {
	Name    string
	Size    int64
	Present bool
}

// Options configure New.
type Options struct {
	// Store holds the sessions and settings, and the rows the pages list.
	Store store.Store
	// Fleet is the fleet server; API its admin routes (Authorization is
	// checked by the server, which asks Authenticate).
	Fleet Fleet
	API   http.Handler
	// PasswordFile holds the password made on first start; it is deleted
	// when the password changes. "" means none.
	PasswordFile string
	// Now returns the time; nil means time.Now.
	Now func() time.Time
	// Logf gets the UI's notices; nil means none.
	Logf func(format string, args ...any)
}

// UI serves /ui/.
type UI struct {
	opt   Options
	mux   *http.ServeMux
	cop   *http.CrossOriginProtection
	pages map[string]*template.Template
	live  *broker
	// gen counts the fleet's changes known here (Changed, and the store's
	// fingerprint moving); cache holds the last read of the fleet for it.
	gen   atomic.Uint64
	cache struct {
		sync.Mutex
		gen  uint64
		at   time.Time
		read *fleetRead
	}
}

// New returns the UI for opt.
func New(opt Options) *UI {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logf == nil {
		opt.Logf = func(string, ...any) {}
	}
	u := &UI{opt: opt, mux: http.NewServeMux(), cop: http.NewCrossOriginProtection(), live: newBroker()}
	u.cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.fail(w, r, nil, http.StatusForbidden, "refused: this form was sent from another site (cross-origin request); use the page it belongs to")
	}))
	u.pages = parsePages()
	u.routes()
	return u
}

func parsePages() map[string]*template.Template {
	base := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html"))
	names, _ := fs.Glob(templateFiles, "templates/*.html")
	pages := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		pages[name] = template.Must(template.Must(base.Clone()).ParseFS(templateFiles, n))
	}
	return pages
}

func (u *UI) routes() {
	m := u.mux
	static, _ := fs.Sub(staticFiles, "static")
	m.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /ui/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/dashboard", http.StatusSeeOther)
	})
	m.HandleFunc("GET /ui/login", u.loginPage)
	m.HandleFunc("POST /ui/login", u.login)
	m.HandleFunc("POST /ui/logout", u.action(u.logout))
	m.HandleFunc("GET /ui/live", u.page(u.stream))
	m.HandleFunc("GET /ui/dashboard", u.page(u.dashboard))
	m.HandleFunc("GET /ui/machines", u.page(u.machines))
	m.HandleFunc("GET /ui/machines/{mac}", u.page(u.machine))
	m.HandleFunc("POST /ui/machines/{mac}", u.action(u.saveMachine))
	m.HandleFunc("POST /ui/machines/{mac}/reflash", u.action(u.reflash))
	m.HandleFunc("POST /ui/machines/{mac}/delete", u.action(u.deleteMachine))
	m.HandleFunc("GET /ui/images", u.page(u.images))
	m.HandleFunc("POST /ui/images/refresh", u.action(u.refreshImages))
	m.HandleFunc("GET /ui/events", u.page(u.events))
	m.HandleFunc("POST /ui/events/{id}/ack", u.action(u.ack))
	m.HandleFunc("GET /ui/tokens", u.page(u.tokens))
	m.HandleFunc("POST /ui/tokens", u.action(u.createToken))
	m.HandleFunc("POST /ui/tokens/{name}/revoke", u.action(u.revokeToken))
	m.HandleFunc("POST /ui/password", u.action(u.changePassword))
	m.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		u.fail(w, r, nil, http.StatusNotFound, "no such page: "+r.URL.Path)
	})
}

// csp allows this origin only: no inline script or style, no frames.
const csp = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; " +
	"frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"

// ServeHTTP serves /ui/: every unsafe request passes CrossOriginProtection
// first.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	u.cop.Handler(u.mux).ServeHTTP(w, r)
}

// view is what every page template gets.
type view struct {
	Title   string
	Nav     string // the current section
	Session *store.Session
	Notice  string // a success to confirm
	Error   string // a failure to explain
	Now     time.Time
	Data    any
}

// render writes page name with data.
func (u *UI) render(w http.ResponseWriter, r *http.Request, code int, name string, v view) {
	t, ok := u.pages[name]
	if !ok {
		panic("web: no page template " + name)
	}
	if v.Now.IsZero() {
		v.Now = u.opt.Now()
	}
	if v.Notice == "" {
		v.Notice = notices[r.URL.Query().Get("done")]
	}
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, "layout.html", v); err != nil {
		u.opt.Logf("web: render %s: %v", name, err)
		http.Error(w, "render "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(b.Bytes())
}

// notices are the confirmations a redirect after a form names (?done=).
var notices = map[string]string{
	"saved":     "Saved.",
	"reflash":   "Reflash armed: the machine flashes at its next boot (now, if it has a power driver).",
	"deleted":   "The machine was forgotten.",
	"acked":     "Acknowledged.",
	"refreshed": "The catalogs were read again.",
	"revoked":   "The token was revoked.",
	"password":  "The password was changed; other sessions that used the old one have ended.",
}

// fail answers with an error page (for a page or a form that went wrong).
func (u *UI) fail(w http.ResponseWriter, r *http.Request, s *store.Session, code int, msg string) {
	u.render(w, r, code, "error", view{Title: http.StatusText(code), Session: s, Error: msg})
}

// seeOther answers a form with a redirect to path, done naming the notice.
func seeOther(w http.ResponseWriter, r *http.Request, path, done string) {
	if done != "" {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		path += sep + "done=" + done
	}
	http.Redirect(w, r, path, http.StatusSeeOther)
}

// back is where a form returns to: its "back" field when that is a page of
// the UI, else def.
func back(r *http.Request, def string) string {
	b := r.PostFormValue("back")
	if strings.HasPrefix(b, "/ui/") && !strings.HasPrefix(b, "//") && !strings.ContainsAny(b, "\\\r\n") {
		if i := strings.Index(b, "done="); i > 0 {
			b = strings.TrimRight(b[:i], "?&")
		}
		return b
	}
	return def
}

func base(r *http.Request) string { return "http://" + r.Host }

// APIError is an answer of the admin API that is not a success.
type APIError struct {
	Code   int
	Detail string
}

func (e *APIError) Error() string { return e.Detail }

type sessionKey struct{}

// call runs an admin API request in-process, as the session's user (the
// server's auth asks Authenticate, which finds the session in the context),
// and decodes a JSON answer into out. An answer that is not 2xx is an
// *APIError with the API's own words.
func (u *UI) call(r *http.Request, s *store.Session, method, path string, in, out any) error {
	var body io.Reader = http.NoBody
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.WithValue(r.Context(), sessionKey{}, s), method, path, body)
	if err != nil {
		return err
	}
	req.RemoteAddr, req.Host = r.RemoteAddr, r.Host
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := &recorder{header: http.Header{}}
	u.opt.API.ServeHTTP(rec, req)
	if rec.code == 0 {
		rec.code = http.StatusOK
	}
	if rec.code/100 != 2 {
		var e wire.Error
		if json.Unmarshal(rec.body.Bytes(), &e) != nil || e.Detail == "" {
			e.Detail = strings.TrimSpace(rec.body.String())
		}
		return &APIError{rec.code, e.Detail}
	}
	if out != nil && rec.body.Len() > 0 {
		return json.Unmarshal(rec.body.Bytes(), out)
	}
	return nil
}

// recorder is the ResponseWriter of an in-process API call.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (w *recorder) Header() http.Header { return w.header }
func (w *recorder) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.body.Write(p)
}
func (w *recorder) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

// failAPI answers a form whose API call failed: the API's code and words.
func (u *UI) failAPI(w http.ResponseWriter, r *http.Request, s *store.Session, err error) {
	var ae *APIError
	if errors.As(err, &ae) {
		u.fail(w, r, s, ae.Code, ae.Detail)
		return
	}
	u.fail(w, r, s, http.StatusInternalServerError, fmt.Sprintf("%v", err))
}
