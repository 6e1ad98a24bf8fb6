package fleet

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"bty/wire"
)

func TestNormalize(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"10.0.0.1:8080", "http://10.0.0.1:8080"},
		{"http://pxe.lan/", "http://pxe.lan"},
		{"https://pxe.lan/bty/", "https://pxe.lan/bty"},
	} {
		if got, err := NormalizeServer(tc.in); err != nil || got != tc.want {
			t.Errorf("NormalizeServer(%q) = %q, %v, want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := NormalizeServer("ftp://x"); err == nil {
		t.Errorf("NormalizeServer(ftp://x) = nil error, want one")
	}
}

func TestCmdline(t *testing.T) {
	c := ParseCmdline(`BOOT_IMAGE=/vmlinuz quiet bty.server=10.0.2.2:8080 bty.mac=52-54-00-12-34-56 bty.catalog="http://h/c.toml" console=ttyS0`)
	want := Cmdline{"bty.server": "10.0.2.2:8080", "bty.mac": "52-54-00-12-34-56", "bty.catalog": "http://h/c.toml"}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("ParseCmdline mismatch (-want +got):\n%s", diff)
	}
	cfg, err := NewConfig("", "", c)
	if err != nil || cfg != (Config{Server: "http://10.0.2.2:8080", MAC: "52:54:00:12:34:56"}) {
		t.Errorf("NewConfig from cmdline = %+v, %v", cfg, err)
	}
	cfg, err = NewConfig("http://other/", "AA:AA:AA:AA:AA:AA", c)
	if err != nil || cfg != (Config{Server: "http://other", MAC: "aa:aa:aa:aa:aa:aa"}) {
		t.Errorf("NewConfig with flags = %+v, %v; flags must win", cfg, err)
	}
	if _, err := NewConfig("http://x", "", Cmdline{}); err == nil || !strings.Contains(err.Error(), "--mac") {
		t.Errorf("NewConfig without MAC = %v, want an error naming --mac", err)
	}
}

// recorder is a protocol server that records each request.
type recorder struct {
	mu       sync.Mutex
	requests []string // "METHOD path body"
	handle   func(w http.ResponseWriter, r *http.Request) bool
}

func (s *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.requests = append(s.requests, strings.TrimSpace(r.Method+" "+r.URL.Path+" "+string(b)))
	s.mu.Unlock()
	if s.handle != nil && s.handle(w, r) {
		return
	}
	http.NotFound(w, r)
}

func (s *recorder) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

func TestClient(t *testing.T) {
	statusFails := 2
	srv := &recorder{handle: func(w http.ResponseWriter, r *http.Request) bool {
		switch r.URL.Path {
		case "/pxe/aa:bb:cc:dd:ee:ff/plan":
			if r.Header.Get("Accept") != "application/json" {
				http.Error(w, "want Accept: application/json", 400)
				return true
			}
			w.Write([]byte(`{"mode":"exit"}`))
		case "/pxe/aa:bb:cc:dd:ee:ff/inventory":
			w.WriteHeader(http.StatusNoContent)
		case "/pxe/aa:bb:cc:dd:ee:ff/status":
			if statusFails > 0 {
				statusFails--
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return true
			}
			w.WriteHeader(http.StatusNoContent)
		default:
			return false
		}
		return true
	}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	c := &Client{Config: Config{Server: ts.URL, MAC: "aa:bb:cc:dd:ee:ff"}, Backoff: time.Millisecond}
	ctx := context.Background()
	if p, err := c.Plan(ctx); err != nil || p.Mode != wire.ModeExit {
		t.Errorf("Plan = %+v, %v, want mode exit", p, err)
	}
	if err := c.PostInventory(ctx, wire.Inventory{Disks: []wire.InventoryDisk{{Path: "/dev/vda"}}}); err != nil {
		t.Errorf("PostInventory = %v", err)
	}
	if err := c.PostStatus(ctx, wire.Failed(strings.Repeat("x", 600), wire.ClassIO)); err != nil {
		t.Errorf("PostStatus after two 503s = %v, want it retried until acknowledged", err)
	}
	got := srv.seen()
	want := []string{
		"GET /pxe/aa:bb:cc:dd:ee:ff/plan",
		`POST /pxe/aa:bb:cc:dd:ee:ff/inventory {"disks":[{"path":"/dev/vda","size":"","vendor":"","model":"","serial":"","tran":"","removable":false,"readonly":false,"size_bytes":0}]}`,
	}
	if diff := cmp.Diff(want, got[:2]); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	if len(got) != 5 {
		t.Fatalf("saw %d requests, want 2 + 3 status posts: %q", len(got), got)
	}
	var st wire.Status
	json.Unmarshal([]byte(strings.SplitN(got[4], " ", 3)[2]), &st)
	if st.Status != "failed" || len([]rune(st.Reason)) != 500 {
		t.Errorf("status body = %q with %d-char reason, want failed with 500", st.Status, len(st.Reason))
	}
}

// TestClientOldServer: a server without /status gets POST /done; an unknown
// MAC's 404 on inventory is harmless; a server that is down fails the plan.
func TestClientOldServer(t *testing.T) {
	srv := &recorder{handle: func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/pxe/aa:bb:cc:dd:ee:ff/done" {
			w.WriteHeader(http.StatusOK)
			return true
		}
		return false
	}}
	ts := httptest.NewServer(srv)
	c := &Client{Config: Config{Server: ts.URL, MAC: "aa:bb:cc:dd:ee:ff"}, Backoff: time.Millisecond}
	ctx := context.Background()
	if err := c.PostStatus(ctx, wire.Status{Status: "done"}); err != nil {
		t.Errorf("PostStatus(done) to an old server = %v, want the /done fallback", err)
	}
	if err := c.PostInventory(ctx, wire.Inventory{}); err != nil {
		t.Errorf("PostInventory answered 404 = %v, want nil", err)
	}
	ts.Close()
	if _, err := c.Plan(ctx); err == nil {
		t.Errorf("Plan from a server that is down = nil error")
	}
}

// TestClientAgentToken: after a plan with an id and a token, the posts carry
// the token and the status its additions; a server that refuses the status
// (409) is not asked again.
func TestClientAgentToken(t *testing.T) {
	var mu sync.Mutex
	auth := map[string]string{}
	var statusBodies []string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		auth[r.URL.Path] = r.Header.Get("Authorization")
		switch r.URL.Path {
		case "/pxe/aa:bb:cc:dd:ee:ff/plan":
			io.WriteString(w, `{"mode":"inventory","plan_id":7,"agent_token":"tok"}`)
		case "/pxe/aa:bb:cc:dd:ee:ff/status":
			statusBodies = append(statusBodies, string(b))
			w.WriteHeader(http.StatusConflict)
			io.WriteString(w, `{"detail":"plan 7 is not the machine's current plan"}`)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer ts.Close()
	c := &Client{Config: Config{Server: ts.URL, MAC: "aa:bb:cc:dd:ee:ff"}, Backoff: time.Millisecond}
	ctx := context.Background()
	if _, err := c.Plan(ctx); err != nil {
		t.Fatal(err)
	}
	c.PostInventory(ctx, wire.Inventory{})
	c.PostProgress(ctx, wire.Progress{Phase: "writing"})
	err := c.PostStatus(ctx, wire.Status{Status: "done", SHA256: strings.Repeat("a", 64)})
	if err == nil || !strings.Contains(err.Error(), "not the machine's current plan") {
		t.Errorf("PostStatus answered 409 = %v, want the server's reason", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, route := range []string{"inventory", "progress", "status"} {
		if got := auth["/pxe/aa:bb:cc:dd:ee:ff/"+route]; got != "Bearer tok" {
			t.Errorf("%s Authorization = %q, want Bearer tok", route, got)
		}
	}
	if len(statusBodies) != 1 || !strings.Contains(statusBodies[0], `"plan_id":7`) || !strings.Contains(statusBodies[0], `"sha256":"aaaa`) {
		t.Errorf("status posts = %q, want one with plan_id 7 and the sha256", statusBodies)
	}
}
