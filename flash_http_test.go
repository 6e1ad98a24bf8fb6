package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// faultServer serves one image at /disk.img with Range and ETag support, and
// injects faults: the first response is cut after cutAt bytes; from the second
// request on, the ETag may change.
type faultServer struct {
	data       []byte
	cutAt      int
	changeETag bool
	trickle    bool // after 2 MiB, send 16 KiB every 50 ms
	requests   atomic.Int32
}

func (s *faultServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/disk.img" {
		http.NotFound(w, r)
		return
	}
	n := s.requests.Add(1)
	etag := `"v1"`
	if s.changeETag && n > 1 {
		etag = `"v2"`
	}
	w.Header().Set("ETag", etag)
	switch {
	case n == 1 && s.cutAt > 0:
		w.Header().Set("Content-Length", fmt.Sprint(len(s.data)))
		w.WriteHeader(http.StatusOK)
		w.Write(s.data[:s.cutAt])
		w.(http.Flusher).Flush()
		// Cut the connection mid-body.
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	case s.trickle:
		w.Header().Set("Content-Length", fmt.Sprint(len(s.data)))
		w.Write(s.data[:2<<20])
		for off := 2 << 20; off < len(s.data); off += 16 << 10 {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			w.Write(s.data[off:min(off+16<<10, len(s.data))])
			w.(http.Flusher).Flush()
		}
	default:
		http.ServeContent(w, r, "disk.img", time.Time{}, bytes.NewReader(s.data))
	}
}

func TestFlashHTTP(t *testing.T) {
	dir := t.TempDir()
	_, img := testImage(t, dir, 7<<20+333)
	for _, tc := range []struct {
		name     string
		srv      *faultServer
		path     string
		code     int
		msg      string
		requests int32
	}{
		{"cut and resumed", &faultServer{data: img, cutAt: 3<<20 + 17}, "/disk.img", 0, "", 2},
		{"validator changed", &faultServer{data: img, cutAt: 3 << 20, changeETag: true}, "/disk.img", 5, "changed", 2},
		{"not found", &faultServer{data: img}, "/missing.img", 5, "404", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := httptest.NewServer(tc.srv)
			defer ts.Close()
			target := filepath.Join(t.TempDir(), "target.img")
			r := runBty(t, "--image", ts.URL+tc.path, "--disk", target, "--yes")
			if r.code != tc.code || !strings.Contains(r.stderr, tc.msg) {
				t.Fatalf("bty --image %s (%s) = exit %d %q, want %d mentioning %q", tc.path, tc.name, r.code, r.stderr, tc.code, tc.msg)
			}
			if tc.requests > 0 && tc.srv.requests.Load() != tc.requests {
				t.Errorf("server saw %d requests, want %d", tc.srv.requests.Load(), tc.requests)
			}
			if tc.code == 0 {
				if got := readDev(t, target, len(img)); !bytes.Equal(got, img) {
					t.Errorf("resumed download: %s", firstDiff(got, img))
				}
			}
		})
	}
}

// TestFlashSIGINT interrupts a flash that is under way: exit 130 and the first
// MiB of the target is zero, so the half-written disk cannot boot.
func TestFlashSIGINT(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	_, img := testImage(t, dir, 7<<20)
	ts := httptest.NewServer(&faultServer{data: img, trickle: true})
	defer ts.Close()
	dev := newLoop(t, 8<<20, 512)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, btyBin, "--image", ts.URL+"/disk.img", "--disk", dev, "--yes", "--json")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until data beyond the first MiB has been written.
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var p progressLine
		if json.Unmarshal(sc.Bytes(), &p) == nil && p.Written > 0 {
			break
		}
	}
	cmd.Process.Signal(syscall.SIGINT)
	var last string
	for sc.Scan() {
		last = sc.Text()
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("bty after SIGINT: %v, want exit 130", err)
	}
	// The result says it in plain words, and what the target holds.
	res := lastResult(t, last)
	if !strings.Contains(res.Error, "cancelled (interrupt signal received)") || !strings.Contains(res.Error, dev+" was left without a partition table") ||
		strings.Contains(res.Error, "context canceled") || res.TargetState != "no_partition_table" || res.Written == 0 {
		t.Errorf("result after SIGINT = %+v, want a plain cancel, the target left without a partition table, and the bytes written", res)
	}
	if head := readDev(t, dev, 1<<20); !bytes.Equal(head, make([]byte, 1<<20)) {
		t.Errorf("first MiB after SIGINT: %s, want zero", firstDiff(head, make([]byte, 1<<20)))
	}
}
