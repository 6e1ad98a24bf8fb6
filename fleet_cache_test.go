package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestFleetCacheRolloutCLI: bty serve --cache and bty fleet cache and
// rollout against it, as an operator types them: warm --wait, ls, rm; a
// rollout started, followed, paused, resumed with a new limit and
// cancelled; bad input exits 2. On SQLite and on PostgreSQL.
func TestFleetCacheRolloutCLI(t *testing.T) {
	images, boot, _ := fleetImages(t)
	img := bytes.Repeat([]byte("remote image "), 100000)
	h := sha256.Sum256(img)
	sum := hex.EncodeToString(h[:])
	var gets atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		w.Header().Set("ETag", `"1"`)
		http.ServeContent(w, r, "remote.img", time.Time{}, bytes.NewReader(img))
	}))
	defer origin.Close()
	cat := filepath.Join(t.TempDir(), "catalog.toml")
	writeFile(t, cat, []byte(fmt.Sprintf("version = 1\n[[images]]\nname = \"remote.img\"\nsrc = %q\nsha256 = %q\n", origin.URL+"/remote.img", sum)))

	for _, bad := range [][]string{
		{"serve", "--images", images, "--cache", t.TempDir()},
		{"serve", "--images", images, "--state", t.TempDir(), "--cache-max", "1G"},
		{"serve", "--images", images, "--state", t.TempDir(), "--cache", t.TempDir(), "--cache-max", "lots"},
	} {
		if r := runBty(t, bad...); r.code != exitUsage || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
			t.Errorf("bty %q = %d %q, want 2 and one line", bad, r.code, r.stderr)
		}
	}

	fleetStores(t, func(t *testing.T, state string) {
		gets.Store(0)
		srv := startFleet(t, images, state, "127.0.0.1:0", "--boot", boot, "--catalog", cat,
			"--cache", filepath.Join(t.TempDir(), "cache"), "--cache-max", "1G")
		if r := srv.fleet("cache", "warm", "remote.img", "--wait", "--timeout", "1m"); r.code != 0 || !strings.Contains(r.stderr, "cached (sha256 "+sum[:12]) {
			t.Fatalf("cache warm --wait = %d %s", r.code, r.stderr)
		}
		if r := srv.fleet("cache", "ls"); r.code != 0 || !strings.Contains(r.stdout, "remote.img") || !strings.Contains(r.stdout, "complete") || !strings.Contains(r.stdout, "of 1.0 GiB") {
			t.Errorf("cache ls = %d:\n%s%s", r.code, r.stdout, r.stderr)
		}
		if n := gets.Load(); n != 1 {
			t.Errorf("the origin got %d requests, want 1", n)
		}
		if r := srv.fleet("cache", "rm", "remote.img"); r.code != 0 {
			t.Errorf("cache rm = %d %s", r.code, r.stderr)
		}
		if r := srv.fleet("cache", "rm", "remote.img"); r.code != exitUsage || !strings.Contains(r.stderr, "not in the cache") {
			t.Errorf("cache rm again = %d %s, want 2", r.code, r.stderr)
		}
		for i := range 3 {
			mac := fmt.Sprintf("52:54:00:aa:cc:%02x", i)
			if r := srv.fleet("set", mac, "--image", "disk.img.gz", "--disk", fmt.Sprintf("serial:S%d", i), "--mode", "bty-flash-once", "--label", "ci"); r.code != 0 {
				t.Fatalf("set %s = %d %s", mac, r.code, r.stderr)
			}
		}
		r := srv.fleet("rollout", "start", "--label", "ci", "--image", "remote.img", "--max-parallel", "1", "--max-failures", "1")
		if r.code != 0 || !strings.Contains(r.stdout, "rollout 1: remote.img to label ci, running; at most 1 at a time, stop after 1 failures") || !strings.Contains(r.stdout, "3 waiting") {
			t.Fatalf("rollout start = %d %s %s", r.code, r.stdout, r.stderr)
		}
		if r := srv.fleet("rollout", "status", "1"); r.code != 0 || strings.Count(r.stdout, "waiting") != 4 {
			t.Errorf("rollout status = %d:\n%s%s", r.code, r.stdout, r.stderr)
		}
		if r := srv.fleet("rollout", "pause", "--label", "ci"); r.code != 0 || !strings.Contains(r.stdout, "paused") {
			t.Errorf("rollout pause = %d %s %s", r.code, r.stdout, r.stderr)
		}
		if r := srv.fleet("rollout", "resume", "1", "--max-parallel", "2"); r.code != 0 || !strings.Contains(r.stdout, "running; at most 2 at a time") {
			t.Errorf("rollout resume = %d %s %s", r.code, r.stdout, r.stderr)
		}
		if r := srv.fleet("rollout", "ls"); r.code != 0 || !strings.Contains(r.stdout, "remote.img") || !strings.Contains(r.stdout, "running") {
			t.Errorf("rollout ls = %d %s %s", r.code, r.stdout, r.stderr)
		}
		if r := srv.fleet("rollout", "cancel", "1"); r.code != 0 || !strings.Contains(r.stdout, "3 cancelled") {
			t.Errorf("rollout cancel = %d %s %s", r.code, r.stdout, r.stderr)
		}
		if r := srv.fleet("rollout", "status", "1", "--wait", "--timeout", "30s"); r.code != 1 || !strings.Contains(r.stderr, "cancelled") {
			t.Errorf("rollout status --wait of a cancelled rollout = %d %s, want 1", r.code, r.stderr)
		}
		if r := srv.fleet("events", "--kind", "rollout.cancelled"); r.code != 0 || !strings.Contains(r.stdout, "rollout 1 cancelled") {
			t.Errorf("events = %d %s", r.code, r.stdout)
		}
		for _, bad := range [][]string{
			{"rollout", "start", "--label", "ci"},
			{"rollout", "start", "--label", "ci", "--image", "nope"},
			{"rollout", "start", "--label", "ci", "--image", "remote.img", "--max-parallel", "0"},
			{"rollout", "pause", "99"},
			{"rollout", "pause", "--label", "nobody"},
			{"rollout", "frob"},
			{"cache", "warm", "nope"},
			{"cache", "frob"},
		} {
			if r := srv.fleet(bad...); r.code != exitUsage || strings.Count(strings.TrimSpace(r.stderr), "\n") > 20 {
				t.Errorf("fleet %q = %d %s, want 2", bad, r.code, r.stderr)
			}
		}
	})
}
