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
	for _, tc := range []struct{ in, want string }{
		{"AA:BB:CC:DD:EE:FF", "aa:bb:cc:dd:ee:ff"},
		{"aa-bb-cc-dd-ee-0f", "aa:bb:cc:dd:ee:0f"},
	} {
		if got, err := NormalizeMAC(tc.in); err != nil || got != tc.want {
			t.Errorf("NormalizeMAC(%q) = %q, %v, want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "aa:bb", "zz:bb:cc:dd:ee:ff", "00:11:22:33:44:55:66:77"} {
		if _, err := NormalizeMAC(bad); err == nil {
			t.Errorf("NormalizeMAC(%q) = nil error, want one", bad)
		}
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

func TestParsePlan(t *testing.T) {
	sha := strings.Repeat("a", 64)
	for _, tc := range []struct {
		in      string
		want    Plan
		wantErr string
	}{
		{`{"mode":"flash","image":"http://h/i.img.xz","target_disk_serial":"S1","name":"i","format":"img.xz","disk_image_sha":"` + strings.ToUpper(sha) + `","extra":1}`,
			Plan{Mode: ModeFlash, Image: "http://h/i.img.xz", TargetDiskSerial: "S1", Name: "i", Format: "img.xz", DiskImageSHA: sha}, ""},
		{`{"mode":"interactive","catalog":"http://h/catalog.toml"}`, Plan{Mode: ModeInteractive, Catalog: "http://h/catalog.toml"}, ""},
		{`{"mode":"inventory"}`, Plan{Mode: ModeInventory}, ""},
		{`{"mode":"exit"}`, Plan{Mode: ModeExit}, ""},
		{`{"mode":"flash","image":"http://h/i"}`, Plan{}, "missing target_disk_serial"},
		{`{"mode":"flash"}`, Plan{}, "missing image and target_disk_serial"},
		{`{"mode":"flash","image":"x","target_disk_serial":"S","disk_image_sha":"abc"}`, Plan{}, "not 64 hex"},
		{`{"mode":"interactive"}`, Plan{}, "missing catalog"},
		{`{"mode":"dance"}`, Plan{}, `unknown mode "dance"`},
		{`{}`, Plan{}, "no mode"},
		{`{"mode":`, Plan{}, "not valid JSON"},
	} {
		got, err := ParsePlan([]byte(tc.in))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParsePlan(%s) error = %v, want one containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParsePlan(%s) = %+v, %v, want %+v", tc.in, got, err, tc.want)
		}
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
	if p, err := c.Plan(ctx); err != nil || p.Mode != ModeExit {
		t.Errorf("Plan = %+v, %v, want mode exit", p, err)
	}
	if err := c.PostInventory(ctx, Inventory{Disks: []map[string]string{{"path": "/dev/vda"}}}); err != nil {
		t.Errorf("PostInventory = %v", err)
	}
	if err := c.PostStatus(ctx, Failed(strings.Repeat("x", 600))); err != nil {
		t.Errorf("PostStatus after two 503s = %v, want it retried until acknowledged", err)
	}
	got := srv.seen()
	want := []string{
		"GET /pxe/aa:bb:cc:dd:ee:ff/plan",
		`POST /pxe/aa:bb:cc:dd:ee:ff/inventory {"disks":[{"path":"/dev/vda"}]}`,
	}
	if diff := cmp.Diff(want, got[:2]); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	if len(got) != 5 {
		t.Fatalf("saw %d requests, want 2 + 3 status posts: %q", len(got), got)
	}
	var st Status
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
	if err := c.PostStatus(ctx, Status{Status: "done"}); err != nil {
		t.Errorf("PostStatus(done) to an old server = %v, want the /done fallback", err)
	}
	if err := c.PostInventory(ctx, Inventory{}); err != nil {
		t.Errorf("PostInventory answered 404 = %v, want nil", err)
	}
	ts.Close()
	if _, err := c.Plan(ctx); err == nil {
		t.Errorf("Plan from a server that is down = nil error")
	}
}
