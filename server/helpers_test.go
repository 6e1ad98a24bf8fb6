package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"bty/catalog"
	"bty/server/store"
	"bty/wire"
)

const (
	testBase = "http://bty.test:8080" // the canonical base of the server's own images
	testMAC  = "52:54:00:12:34:56"
	testImg  = "disk.img.gz"
)

// fixture is a fleet server on loopback with a real store and a real image
// directory holding testImg, and a clock the test moves.
type fixture struct {
	t      *testing.T
	srv    *Server
	ts     *httptest.Server
	st     store.Store
	state  string // the store's --state: opens its database again
	admin  string
	ref    string // testImg's ref
	sha    string // testImg's sha256
	dir    string
	mu     sync.Mutex
	clock  time.Time
	events int64 // the newest event id seen by since()
}

func newFixture(t *testing.T, tweak ...func(*Options)) *fixture {
	t.Helper()
	f := &fixture{t: t, clock: time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC), dir: t.TempDir()}
	imgs := filepath.Join(f.dir, "images")
	boot := filepath.Join(f.dir, "boot")
	os.MkdirAll(imgs, 0o755)
	os.MkdirAll(boot, 0o755)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(bytes.Repeat([]byte("bty"), 1000))
	zw.Close()
	os.WriteFile(filepath.Join(imgs, testImg), gz.Bytes(), 0o644)
	sum := sha256.Sum256(gz.Bytes())
	f.sha = hex.EncodeToString(sum[:])
	f.ref, _ = catalog.Ref(testBase + "/images/" + testImg)
	os.WriteFile(filepath.Join(boot, "vmlinuz"), []byte("kernel-bytes-0123456789"), 0o644)
	os.WriteFile(filepath.Join(boot, "initrd.img"), []byte("initrd"), 0o644)
	st, state := openState(t, filepath.Join(f.dir, "state"))
	f.st, f.state = st, state
	opt := Options{Store: st, Catalog: catalog.NewServer(catalog.ServerOptions{Dir: imgs}), ImagesDir: imgs, BaseURL: testBase,
		BootDir: boot, Kernel: "vmlinuz", Initrd: "initrd.img", Version: "bty test", Now: f.now}
	for _, tw := range tweak {
		tw(&opt)
	}
	f.srv = New(opt)
	f.ts = httptest.NewServer(f.srv)
	t.Cleanup(func() { f.ts.Close(); f.srv.Close(); st.Close() })
	if _, err := EnsureAdminToken(context.Background(), st, filepath.Join(f.dir, "state"), f.now()); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(f.dir, "state", "admin.token"))
	f.admin = strings.TrimSpace(string(b))
	return f
}

func (f *fixture) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.clock
}

// tick moves the clock on.
func (f *fixture) tick(d time.Duration) {
	f.mu.Lock()
	f.clock = f.clock.Add(d)
	f.mu.Unlock()
}

// resp is an answer.
type resp struct {
	code   int
	body   string
	header http.Header
}

// do sends a request; hdr is pairs of header names and values.
func (f *fixture) do(method, path, body string, hdr ...string) resp {
	f.t.Helper()
	f.tick(time.Second)
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, f.ts.URL+path, rd)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, string(b), res.Header}
}

// adm sends an admin request with the admin token.
func (f *fixture) adm(method, path, body string) resp {
	f.t.Helper()
	return f.do(method, path, body, "Authorization", "Bearer "+f.admin)
}

// want fails unless r has code.
func (f *fixture) want(r resp, code int, what string) resp {
	f.t.Helper()
	if r.code != code {
		f.t.Fatalf("%s: %d %s, want %d", what, r.code, r.body, code)
	}
	return r
}

// register binds testMAC to testImg in mode with a target serial.
func (f *fixture) register(mode string, extra ...string) {
	f.t.Helper()
	body := `{"bty_image_ref":"` + f.ref + `","boot_mode":"` + mode + `","target_disk_serial":"SER1"` + strings.Join(extra, "") + `}`
	f.want(f.adm("PUT", "/machines/"+testMAC, body), 200, "PUT machine")
}

// boot fetches the machine's script for a new boot (its own boot id).
func (f *fixture) boot(id string) string {
	f.t.Helper()
	return f.want(f.do("GET", "/pxe/"+wire.HexHyp(testMAC)+"?boot="+id, ""), 200, "GET /pxe boot "+id).body
}

// plan fetches the plan.
func (f *fixture) plan() wire.Plan {
	f.t.Helper()
	r := f.want(f.do("GET", "/pxe/"+testMAC+"/plan", ""), 200, "GET plan")
	p, err := wire.ParsePlan([]byte(r.body))
	if err != nil {
		f.t.Fatalf("plan %s: %v", r.body, err)
	}
	return p
}

// status posts a status with the plan's token.
func (f *fixture) status(p wire.Plan, body string) resp {
	f.t.Helper()
	return f.do("POST", "/pxe/"+testMAC+"/status", body, "Authorization", "Bearer "+p.AgentToken)
}

// flash runs one whole flash cycle from a boot that is offered the flash.
func (f *fixture) flash(bootID string) wire.Plan {
	f.t.Helper()
	if s := f.boot(bootID); !isLive(s) {
		f.t.Fatalf("boot %s got %q, want the live environment", bootID, s)
	}
	f.want(f.do("HEAD", "/boot/vmlinuz?mac="+wire.HexHyp(testMAC), ""), 200, "HEAD kernel")
	p := f.plan()
	if p.Mode != wire.ModeFlash || p.AgentToken == "" {
		f.t.Fatalf("plan = %+v, want a flash with a token", p)
	}
	f.want(f.status(p, `{"status":"done","plan_id":`+itoa(p.PlanID)+`,"sha256":"`+f.sha+`"}`), 204, "status done")
	return p
}

func isLive(script string) bool { return strings.Contains(script, "kernel ${bty-base}/boot/vmlinuz") }
func isDisk(script string) bool { return strings.Contains(script, "sanboot --no-describe --drive") }

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// machine reads the machine.
func (f *fixture) machine() wire.Machine {
	f.t.Helper()
	var m wire.Machine
	json.Unmarshal([]byte(f.want(f.adm("GET", "/machines/"+testMAC, ""), 200, "GET machine").body), &m)
	return m
}

// kinds returns the kinds of the events logged since the last call, oldest first.
func (f *fixture) kinds() []string {
	f.t.Helper()
	var evs wire.Events
	json.Unmarshal([]byte(f.adm("GET", "/events?limit=500&after_id="+itoa(f.events), "").body), &evs)
	sort.Slice(evs.Events, func(i, j int) bool { return evs.Events[i].ID < evs.Events[j].ID })
	var out []string
	for _, e := range evs.Events {
		out = append(out, e.Kind)
		f.events = e.ID
	}
	return out
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

var catalogResolver catalog.Resolver

func refOf(t *testing.T, src string) string {
	ref, err := catalog.Ref(src)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}
