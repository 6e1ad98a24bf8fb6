package server

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"bty/catalog"
	"bty/wire"
)

// TestRefreshReachesOtherServers: a catalog refresh asked of one server is
// repeated by the other servers on the database (a store notice), so a
// machine is not planned from a catalog that only one server has re-read.
func TestRefreshReachesOtherServers(t *testing.T) {
	dir := t.TempDir()
	cat := filepath.Join(dir, "catalog.toml")
	write := func(name string) {
		os.WriteFile(cat, []byte("version = 1\n[[images]]\nname = \""+name+"\"\nsrc = \"https://images.example/"+name+".img.gz\"\nsha256 = \""+strings.Repeat("a", 64)+"\"\n"), 0o644)
	}
	write("first")
	sources := func(o *Options) {
		o.CatalogSources = []string{cat}
		o.Resolver = &catalogResolver
	}
	f := newFixture(t, sources)
	opt := Options{Store: f.st, Catalog: catalog.NewServer(catalog.ServerOptions{Dir: filepath.Join(f.dir, "images")}),
		ImagesDir: filepath.Join(f.dir, "images"), BaseURL: testBase, Version: "bty test", Now: f.now}
	sources(&opt)
	other := New(opt)
	ts := httptest.NewServer(other)
	t.Cleanup(func() { ts.Close(); other.Close() })
	if err := other.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	go other.Run(t.Context(), 0)

	write("second")
	f.want(f.adm("POST", "/admin/catalogs/refresh", ""), 204, "refresh")
	deadline := time.Now().Add(time.Minute)
	for {
		code, body, err := get(ts.URL + "/images")
		if err == nil && code == 200 && strings.Contains(body, `"second"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the other server's images a minute after the refresh: %d %s %v", code, body, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func get(url string) (int, string, error) {
	res, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, string(b), err
}

// TestWakeFromEveryServer: a reflash of a Wake-on-LAN machine armed through
// one server makes every server on the database send the magic packet (each
// reaches its own segment), while the cycle is armed once.
func TestWakeFromEveryServer(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	f := newFixture(t)
	opt := Options{Store: f.st, Catalog: catalog.NewServer(catalog.ServerOptions{Dir: filepath.Join(f.dir, "images")}),
		ImagesDir: filepath.Join(f.dir, "images"), BaseURL: testBase, Version: "bty test", Now: f.now}
	other := New(opt)
	t.Cleanup(other.Close)
	go other.Run(t.Context(), 0)
	f.register(wire.BootFlashOnce, `,"power":"wol:`+pc.LocalAddr().String()+`"`)
	f.want(f.adm("POST", "/machines/"+testMAC+"/reflash", ""), 202, "reflash")
	buf := make([]byte, 200)
	pc.SetReadDeadline(time.Now().Add(time.Minute))
	for i := range 2 {
		n, _, err := pc.ReadFrom(buf)
		if err != nil || n != 102 || buf[6] != 0x52 {
			t.Fatalf("magic packet %d of 2 (one per server) = %x, %v", i+1, buf[:n], err)
		}
	}
	if c := f.machine().Cycle; c == nil || c.State != wire.CycleArmed {
		t.Errorf("cycle after the reflash = %+v, want one armed", c)
	}
}

// TestFirstStartTogether: servers on one database that start at the same
// moment with one --secrets directory make one admin token and one web UI
// password between them, and the files left in the directory are the ones
// that work (a losing server neither overwrites nor removes the winner's).
func TestFirstStartTogether(t *testing.T) {
	for round := range 2 {
		dir := t.TempDir()
		st := openStore(t, dir)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 3 {
			wg.Go(func() {
				if _, err := EnsureAdminToken(t.Context(), st, dir, time.Now()); err != nil {
					errs <- err
				}
				if _, err := EnsurePassword(t.Context(), st, dir, "", time.Now()); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: %v", round, err)
		}
		tok, err1 := os.ReadFile(filepath.Join(dir, "admin.token"))
		pw, err2 := os.ReadFile(filepath.Join(dir, "admin.password"))
		if err1 != nil || err2 != nil {
			t.Fatalf("round %d: the first start left no file: %v %v", round, err1, err2)
		}
		srv := New(Options{Store: st, Catalog: catalog.NewServer(catalog.ServerOptions{Dir: dir}), ImagesDir: dir, BaseURL: testBase})
		ts := httptest.NewServer(srv)
		req, _ := http.NewRequest("GET", ts.URL+"/machines", nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("round %d: GET /machines with admin.token = %d, want 200", round, res.StatusCode)
		}
		noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		res, err = noRedirect.PostForm(ts.URL+"/ui/login", url.Values{"password": {strings.TrimSpace(string(pw))}})
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/ui/dashboard" {
			t.Errorf("round %d: login with admin.password = %d to %q, want 303 to the dashboard", round, res.StatusCode, res.Header.Get("Location"))
		}
		ts.Close()
		srv.Close()
	}
}
