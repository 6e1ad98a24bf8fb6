package web_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"bty/catalog"
	"bty/server"
	"bty/server/store"
	"bty/wire"
)

// harness is a real fleet server on loopback: a SQLite store, an image
// directory with one image, the live environment's files, the web UI, and a
// clock the test moves (so rates and ETAs are exact).
type harness struct {
	t        testing.TB
	srv      *server.Server
	ts       *httptest.Server
	st       *store.SQLite
	dir      string
	admin    string // the admin API token
	password string // the web UI's password
	image    string // the image's name
	ref      string // its ref
	sha      string // its sha256
	size     int64

	mu    sync.Mutex
	clock time.Time
}

const testPassword = "correct horse battery"

func newHarness(t testing.TB) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), clock: time.Now().UTC().Truncate(time.Second), image: "debian-12-x86_64.img.gz", password: testPassword}
	imgs, boot, state := filepath.Join(h.dir, "images"), filepath.Join(h.dir, "boot"), filepath.Join(h.dir, "state")
	for _, d := range []string{imgs, boot, state} {
		os.MkdirAll(d, 0o755)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(bytes.Repeat([]byte("bty web ui "), 100000))
	zw.Close()
	os.WriteFile(filepath.Join(imgs, h.image), gz.Bytes(), 0o644)
	sum := sha256.Sum256(gz.Bytes())
	h.sha, h.size = hex.EncodeToString(sum[:]), int64(gz.Len())
	os.WriteFile(filepath.Join(boot, "vmlinuz"), []byte("kernel"), 0o644)
	os.WriteFile(filepath.Join(boot, "initrd.img"), []byte("initrd"), 0o644)
	st, err := store.OpenSQLite(filepath.Join(state, "fleet.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	h.st = st
	// The image's ref is that of its URL under the server's canonical base,
	// which is the test server's own address: start the listener first.
	h.ts = httptest.NewUnstartedServer(nil)
	baseURL := "http://" + h.ts.Listener.Addr().String()
	h.ref, _ = catalog.Ref(baseURL + "/images/" + h.image)
	h.srv = server.New(server.Options{Store: st, Catalog: catalog.NewServer(catalog.ServerOptions{Dir: imgs}), ImagesDir: imgs,
		BaseURL: baseURL, BootDir: boot, Kernel: "vmlinuz", Initrd: "initrd.img", Version: "bty test", Now: h.now})
	h.ts.Config.Handler = h.srv
	h.ts.Start()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.srv.Run(ctx, 0); close(done) }()
	t.Cleanup(func() { cancel(); <-done; h.ts.Close(); h.srv.Close(); st.Close() })
	if _, err := server.EnsureAdminToken(ctx, st, state, h.now()); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(state, "admin.token"))
	h.admin = strings.TrimSpace(string(b))
	if _, err := server.EnsurePassword(ctx, st, state, h.password, h.now()); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) now() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.clock
}

// tick moves the clock on.
func (h *harness) tick(d time.Duration) {
	h.mu.Lock()
	h.clock = h.clock.Add(d)
	h.mu.Unlock()
}

// do sends a request to the server; hdr is pairs of header names and
// values. It returns the status and the body.
func (h *harness) do(c *http.Client, method, path, body string, hdr ...string) (int, string) {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, h.ts.URL+path, rd)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if c == nil {
		c = noRedirect(nil)
	}
	res, err := c.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// want fails unless code is want.
func (h *harness) want(code int, body string, want int, what string) string {
	h.t.Helper()
	if code != want {
		h.t.Fatalf("%s: %d %s, want %d", what, code, body, want)
	}
	return body
}

// api sends an admin API request with the admin token.
func (h *harness) api(method, path, body string) string {
	h.t.Helper()
	code, b := h.do(nil, method, path, body, "Authorization", "Bearer "+h.admin, "Content-Type", "application/json")
	if code/100 != 2 {
		h.t.Fatalf("%s %s: %d %s", method, path, code, b)
	}
	return b
}

func (h *harness) machine(mac string) wire.Machine {
	h.t.Helper()
	var m wire.Machine
	json.Unmarshal([]byte(h.api("GET", "/machines/"+mac, "")), &m)
	return m
}

// events returns the events of kind, newest first.
func (h *harness) events(kind string) []wire.Event {
	h.t.Helper()
	var evs wire.Events
	json.Unmarshal([]byte(h.api("GET", "/events?limit=500&kind="+kind, "")), &evs)
	return evs.Events
}

// noRedirect returns a client that keeps cookies in jar (a new one when
// nil) and does not follow redirects, so that a test sees the 303s.
func noRedirect(jar http.CookieJar) *http.Client {
	if jar == nil {
		jar, _ = cookiejar.New(nil)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// login logs a client in with the password, as bty-web's agents do.
func (h *harness) login(c *http.Client) {
	h.t.Helper()
	code, body := h.do(c, "POST", "/ui/login", url.Values{"password": {h.password}}.Encode(), "Content-Type", "application/x-www-form-urlencoded")
	h.want(code, body, http.StatusSeeOther, "POST /ui/login")
}

// machineSim plays a machine's side: PXE, the live environment's plan,
// inventory, progress and status, with the agent token of its cycle.
type machineSim struct {
	h    *harness
	mac  string
	plan wire.Plan
}

func (h *harness) newMachine(mac string) *machineSim { return &machineSim{h: h, mac: mac} }

// boot PXE-boots: the bootstrap script, then the machine's script for this
// boot. It returns that script.
func (m *machineSim) boot() string {
	m.h.t.Helper()
	m.h.tick(time.Second)
	code, boot := m.h.do(nil, "GET", "/pxe-bootstrap.ipxe", "")
	m.h.want(code, boot, 200, "GET /pxe-bootstrap.ipxe")
	i := strings.Index(boot, "?boot=")
	id := strings.Fields(boot[i+len("?boot="):])[0]
	code, script := m.h.do(nil, "GET", "/pxe/"+wire.HexHyp(m.mac)+"?boot="+id, "")
	return m.h.want(code, script, 200, "GET /pxe/"+m.mac)
}

// live boots the live environment (the kernel fetched) and fetches the plan.
func (m *machineSim) live() wire.Plan {
	m.h.t.Helper()
	m.h.tick(2 * time.Second)
	code, b := m.h.do(nil, "HEAD", "/boot/vmlinuz?mac="+wire.HexHyp(m.mac), "")
	m.h.want(code, b, 200, "HEAD /boot/vmlinuz")
	m.h.tick(3 * time.Second)
	code, b = m.h.do(nil, "GET", "/pxe/"+m.mac+"/plan", "")
	m.h.want(code, b, 200, "GET plan")
	p, err := wire.ParsePlan([]byte(b))
	if err != nil {
		m.h.t.Fatalf("plan %s: %v", b, err)
	}
	m.plan = p
	return p
}

func (m *machineSim) post(route, body string) {
	m.h.t.Helper()
	code, b := m.h.do(nil, "POST", "/pxe/"+m.mac+"/"+route, body, "Authorization", "Bearer "+m.plan.AgentToken, "Content-Type", "application/json")
	m.h.want(code, b, http.StatusNoContent, "POST "+route)
}

// inventory reports two disks (the target and a decoy) and a small lshw tree.
func (m *machineSim) inventory() {
	m.h.t.Helper()
	m.h.tick(4 * time.Second)
	m.post("inventory", `{"disks":[
		{"path":"/dev/nvme0n1","size":"477G","vendor":"","model":"Samsung SSD 980 PRO 512GB","serial":"S5GXNX0T","tran":"nvme","size_bytes":512110190592},
		{"path":"/dev/sda","size":"1.8T","vendor":"ATA","model":"ST2000DM008","serial":"ZFL0DECOY","tran":"sata","size_bytes":2000398934016}],
		"lshw":{"id":"machine","class":"system","vendor":"Supermicro","product":"SYS-5019C-M","serial":"S19X0042","children":[
		{"id":"core","class":"bus","children":[{"id":"cpu","class":"processor","product":"Intel(R) Xeon(R) E-2276G CPU @ 3.80GHz"},
		{"id":"memory","class":"memory","size":34359738368},
		{"id":"network","class":"network","product":"Ethernet Controller I210","logicalname":"eno1","serial":"`+m.mac+`"}]}]}}`)
}

// progress posts where the write is, after d more seconds.
func (m *machineSim) progress(d time.Duration, written, total int64) {
	m.h.t.Helper()
	m.h.tick(d)
	m.post("progress", fmt.Sprintf(`{"plan_id":%d,"phase":"writing","bytes_written":%d,"bytes_total":%d}`, m.plan.PlanID, written, total))
}

func (m *machineSim) done(written int64) {
	m.h.t.Helper()
	m.h.tick(2 * time.Second)
	m.post("status", fmt.Sprintf(`{"status":"done","plan_id":%d,"sha256":%q,"bytes_written":%d}`, m.plan.PlanID, m.plan.DiskImageSHA, written))
}

func (m *machineSim) failed(reason string) {
	m.h.t.Helper()
	m.h.tick(2 * time.Second)
	m.post("status", fmt.Sprintf(`{"status":"failed","plan_id":%d,"reason":%q,"class":"integrity"}`, m.plan.PlanID, reason))
}
