package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// pxeServer speaks the server side of docs/server-protocol.md and records every
// request. plans maps a MAC to the plan body it gets.
type pxeServer struct {
	image []byte
	mu    sync.Mutex
	plans map[string]string
	log   []string // "METHOD path body"
}

func (s *pxeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.log = append(s.log, strings.TrimSpace(r.Method+" "+r.URL.Path+" "+string(body)))
	s.mu.Unlock()
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.URL.Path == "/images/disk.img":
		http.ServeContent(w, r, "disk.img", time.Time{}, bytes.NewReader(s.image))
	case len(parts) == 3 && parts[0] == "pxe" && parts[2] == "plan":
		s.mu.Lock()
		plan, ok := s.plans[parts[1]]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, plan)
	case len(parts) == 3 && parts[0] == "pxe" && (parts[2] == "inventory" || parts[2] == "status"):
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

// requests returns the recorded requests for one MAC whose path ends in route.
func (s *pxeServer) requests(mac, route string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range s.log {
		if strings.Contains(l, " /pxe/"+mac+"/"+route) {
			out = append(out, l)
		}
	}
	return out
}

// udevSerials writes a udev database under a new run root that gives each
// device the serial in serials, as udev does for real disks.
func udevSerials(t *testing.T, serials map[string]string) string {
	t.Helper()
	run := t.TempDir()
	data := filepath.Join(run, "udev", "data")
	os.MkdirAll(data, 0o755)
	for dev, serial := range serials {
		b, err := os.ReadFile(filepath.Join("/sys/class/block", filepath.Base(dev), "dev"))
		if err != nil {
			t.Fatal(err)
		}
		rec := fmt.Sprintf("E:ID_SERIAL_SHORT=%s\nE:ID_SERIAL=%s\n", serial, serial)
		writeFile(t, filepath.Join(data, "b"+strings.TrimSpace(string(b))), []byte(rec))
	}
	return run
}

// runServerMode runs bty --server URL --mac MAC --no-reboot with disks seen
// through the run root.
func runServerMode(t *testing.T, url, mac, run string) result {
	t.Helper()
	return runBtyEnv(t, []string{"BTY_RUNDIR=" + run, "BTY_CMDLINE=/nonexistent"}, "--server", url, "--mac", mac, "--no-reboot")
}

func flashPlan(url, serial, sha string) string {
	b, _ := json.Marshal(map[string]string{"mode": "flash", "image": url + "/images/disk.img", "target_disk_serial": serial, "name": "disk.img", "format": "img", "disk_image_sha": sha})
	return string(b)
}

// TestServerMode follows each kind of plan, and the failures a fleet meets.
func TestServerMode(t *testing.T) {
	requireRoot(t)
	_, img := testImage(t, t.TempDir(), 5<<20+99)
	dev := newLoop(t, 8<<20, 512)
	run := udevSerials(t, map[string]string{dev: "BTY-E2E-1"})
	srv := &pxeServer{image: img, plans: map[string]string{}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	sum := sha256Hex(img)

	for i, tc := range []struct {
		name     string
		plan     string // "" : no plan (404)
		code     int
		msg      string // in stderr
		status   string // in the status post, "" for none
		wantImg  bool   // target holds the image afterwards
		headZero bool   // target's first MiB is zero afterwards
	}{
		{"flash", flashPlan(ts.URL, "BTY-E2E-1", sum), 0, "would sync and reboot", `{"status":"done"}`, true, false},
		// A delta plan without a block index: the image is read whole, and
		// only what the disk lacks is written.
		{"delta", strings.Replace(flashPlan(ts.URL, "BTY-E2E-1", sum), "{", `{"delta":true,`, 1), 0, "delta: ", `{"status":"done"}`, true, false},
		{"serial not found", flashPlan(ts.URL, "NO-SUCH-SERIAL", sum), 3, "NO-SUCH-SERIAL", `"status":"failed","reason":"serial \"NO-SUCH-SERIAL\"`, false, false},
		{"digest mismatch", flashPlan(ts.URL, "BTY-E2E-1", strings.Repeat("0", 64)), 4, "sha256 mismatch", `"status":"failed","reason":"integrity check failed: sha256 mismatch`, false, true},
		{"exit", `{"mode":"exit"}`, 0, "boot the local disk", "", false, false},
		{"inventory", `{"mode":"inventory"}`, 0, "inventory posted", "", false, false},
		{"malformed json", `{"mode":`, 5, "not valid JSON", "", false, false},
		{"unknown mode", `{"mode":"dance"}`, 5, `unknown mode "dance"`, "", false, false},
		{"missing fields", `{"mode":"flash","image":"x"}`, 5, "missing target_disk_serial", "", false, false},
		{"unknown machine", "", 5, "404", "", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mac := fmt.Sprintf("52:54:00:00:00:%02x", i)
			if tc.plan != "" {
				srv.mu.Lock()
				srv.plans[mac] = tc.plan
				srv.mu.Unlock()
			}
			sh(t, "head -c 8M /dev/urandom > "+dev)
			before := readDev(t, dev, 8<<20)
			r := runServerMode(t, ts.URL, strings.ToUpper(strings.ReplaceAll(mac, ":", "-")), run)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("bty --server (%s) = exit %d\n%s\nwant exit %d mentioning %q", tc.name, r.code, r.stderr, tc.code, tc.msg)
			}
			statuses := srv.requests(mac, "status")
			switch {
			case tc.status == "" && len(statuses) > 0:
				t.Errorf("status posts = %q, want none", statuses)
			case tc.status != "" && (len(statuses) != 1 || !strings.Contains(statuses[0], tc.status)):
				t.Errorf("status posts = %q, want one containing %s", statuses, tc.status)
			}
			if inv := srv.requests(mac, "inventory"); len(inv) != 1 || !strings.Contains(inv[0], `"disks":[`) {
				t.Errorf("inventory posts = %q, want one with disks", inv)
			}
			after := readDev(t, dev, 8<<20)
			switch {
			case tc.wantImg && !bytes.Equal(after[:len(img)], img):
				t.Errorf("target after flash plan: %s", firstDiff(after[:len(img)], img))
			case tc.headZero && !bytes.Equal(after[:1<<20], make([]byte, 1<<20)):
				t.Errorf("first MiB after failed flash is not zero")
			case !tc.wantImg && !tc.headZero && !bytes.Equal(after, before):
				t.Errorf("target changed by a plan that writes nothing: %s", firstDiff(after, before))
			}
		})
	}
	// A server that is down: the fallback names it.
	ts.Close()
	if r := runServerMode(t, ts.URL, "52:54:00:00:00:ff", run); r.code != 5 || !strings.Contains(r.stderr, "no plan from") {
		t.Errorf("bty --server (down) = exit %d %q, want 5 and 'no plan from'", r.code, r.stderr)
	}
}

// TestFleet: 16 machines flash their own disks from one server at once.
func TestFleet(t *testing.T) {
	requireRoot(t)
	const n = 16
	_, img := testImage(t, t.TempDir(), 5<<20+4097)
	srv := &pxeServer{image: img, plans: map[string]string{}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	devs := make([]string, n)
	serials := map[string]string{}
	for i := range devs {
		devs[i] = newLoop(t, 6<<20, 512)
		serials[devs[i]] = fmt.Sprintf("FLEET-%02d", i)
		srv.plans[fmt.Sprintf("52:54:00:aa:00:%02x", i)] = flashPlan(ts.URL, serials[devs[i]], sha256Hex(img))
	}
	run := udevSerials(t, serials)
	var wg sync.WaitGroup
	results := make([]result, n)
	for i := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = runServerMode(t, ts.URL, fmt.Sprintf("52:54:00:aa:00:%02x", i), run)
		}()
	}
	wg.Wait()
	for i, dev := range devs {
		mac := fmt.Sprintf("52:54:00:aa:00:%02x", i)
		if results[i].code != 0 {
			t.Errorf("machine %d: exit %d\n%s", i, results[i].code, results[i].stderr)
		}
		if st := srv.requests(mac, "status"); len(st) != 1 || !strings.Contains(st[0], `"done"`) {
			t.Errorf("machine %d status posts = %q, want one done", i, st)
		}
		// The console shows every quarter of the write, even for a flash
		// quicker than the progress sampling, and what the digest was
		// checked against.
		if !regexp.MustCompile(`(?s)write 25%.*write 50%.*write 75%.*flash complete.*matches the plan's disk_image_sha`).MatchString(results[i].stderr) {
			t.Errorf("machine %d: the log lacks the write quarters or the digest's source:\n%s", i, results[i].stderr)
		}
		if got := readDev(t, dev, len(img)); !bytes.Equal(got, img) {
			t.Errorf("machine %d target %s: %s", i, dev, firstDiff(got, img))
		}
	}
}
