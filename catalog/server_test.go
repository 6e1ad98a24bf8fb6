package catalog

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pelletier/go-toml/v2"

	"bty/category"
	"bty/format"
)

// serveDir makes an image directory with a raw image of size bytes (random,
// behind an MBR signature) and some files that must not be served.
func serveDir(t *testing.T, size int) (dir string, img []byte) {
	t.Helper()
	dir = t.TempDir()
	img = make([]byte, size)
	if _, err := rand.Read(img); err != nil {
		t.Fatal(err)
	}
	img[510], img[511] = 0x55, 0xaa
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("disk.img", img)
	write(".secret.img", img[:1024])
	write("readme.txt", []byte("hello\n"))
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "passwd.img")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.img"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, img
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestServerCatalog(t *testing.T) {
	dir, img := serveDir(t, 1<<20)
	other, err := Parse("other.toml", []byte(goodCatalog))
	if err != nil {
		t.Fatal(err)
	}
	var log syncBuffer
	s := NewServer(ServerOptions{Dir: dir, Catalogs: []*Catalog{other}, Log: &log, Version: "bty test"})
	s.Warm(context.Background())
	srv := httptest.NewServer(s)
	defer srv.Close()

	r := &Resolver{Catalogs: []string{srv.URL + "/catalog.toml"}}
	c, err := r.Load(context.Background(), srv.URL+"/catalog.toml")
	if err != nil {
		t.Fatalf("Load(served catalog) = %v", err)
	}
	src := srv.URL + "/images/disk.img"
	want := []Entry{
		{Name: "disk.img", Src: src, SHA256: sha(img), Format: format.Raw.Catalog(), Size: int64(len(img)), Ref: mustRef(t, src), From: srv.URL + "/catalog.toml", Line: 3},
		{Name: "debian.img.xz", Src: "https://example.com/debian.img.xz", SHA256: sumA, Format: "img.xz", Size: 123, Ref: mustRef(t, "https://example.com/debian.img.xz"), From: srv.URL + "/catalog.toml", Line: 11},
	}
	if diff := cmp.Diff(want, c.Images); diff != "" {
		t.Errorf("served catalog differs (-want +got):\n%s", diff)
	}

	for path, body := range map[string]string{"/healthz": `{"status":"ok"}` + "\n", "/version": `{"version":"bty test"}` + "\n"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != body {
			t.Errorf("GET %s = %d %q, want 200 %q", path, resp.StatusCode, b, body)
		}
	}
	// The server logs a request after its response is complete, so a client
	// can be done before the line is written: wait for all three.
	var lines, hashing []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		lines, hashing = nil, nil
		for _, l := range strings.Split(strings.TrimSpace(log.String()), "\n") {
			if strings.HasPrefix(l, "bty serve: ") {
				hashing = append(hashing, l)
			} else {
				lines = append(lines, l)
			}
		}
		if len(lines) >= 3 {
			break
		}
	}
	slices.Sort(lines)
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "GET /catalog.toml 200 ") || !strings.Contains(lines[0], "127.0.0.1:") {
		t.Errorf("log = %q, want one line per request: method path status bytes duration remote", lines)
	}
	if len(hashing) != 2 || hashing[0] != "bty serve: hashing disk.img (1.0 MiB)" || !strings.HasPrefix(hashing[1], "bty serve: hashed disk.img in ") || !strings.HasSuffix(hashing[1], " MiB/s)") {
		t.Errorf("log of the hashing = %q, want when it started and when it was done, with the rate", hashing)
	}
}

// gate passes reads through up to a limit the test moves, and holds them
// there: a hash that takes as long as the test says, whatever the machine.
type gate struct {
	mu      sync.Mutex
	cond    *sync.Cond
	r       io.Reader
	n, open int64
	err     error // returned once set: the test is over
}

func newGate(open int64) *gate {
	g := &gate{open: open}
	g.cond = sync.NewCond(&g.mu)
	return g
}

func (g *gate) wrap(r io.Reader) io.Reader { g.r = r; return g }

func (g *gate) Read(p []byte) (int, error) {
	g.mu.Lock()
	for g.n >= g.open && g.err == nil {
		g.cond.Wait()
	}
	if g.err != nil {
		g.mu.Unlock()
		return 0, g.err
	}
	p = p[:min(int64(len(p)), g.open-g.n)]
	g.mu.Unlock()
	n, err := g.r.Read(p)
	g.mu.Lock()
	g.n += int64(n)
	g.mu.Unlock()
	return n, err
}

func (g *gate) set(open int64, err error) {
	g.mu.Lock()
	g.open, g.err = open, err
	g.cond.Broadcast()
	g.mu.Unlock()
}

// waitLog polls the log for a line containing want, for at most a minute.
func waitLog(t *testing.T, log *syncBuffer, want string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if strings.Contains(log.String(), want) {
			return
		}
	}
	t.Fatalf("the log never said %q:\n%s", want, log.String())
}

// TestServerPendingWhileHashing: while a 40 GiB image (a sparse file) is
// being hashed, /catalog.toml answers with the images whose digest is known
// under [[images]] and the big one under [[pending_images]], which a client
// that only knows [[images]] ignores; bty lists it as pending and refuses to
// flash it. The hash is held at a point the test chooses (gate) rather than
// made slow by 40 GiB of reading. A second image is then hashed to the end,
// with its progress in the log, and moves to [[images]].
func TestServerPendingWhileHashing(t *testing.T) {
	dir := t.TempDir()
	small := []byte("a small image")
	if err := os.WriteFile(filepath.Join(dir, "small.img"), small, 0o644); err != nil {
		t.Fatal(err)
	}
	sparse := func(name string, size int64) {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		f.Write([]byte("head of " + name))
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
	}
	sparse("big.img", 40<<30)
	sparse("mid.img", 64<<20)

	var log syncBuffer
	s := NewServer(ServerOptions{Dir: dir, Log: &log, ProgressEvery: time.Nanosecond, Wait: 100 * time.Millisecond})
	gates := map[string]*gate{"big.img": newGate(16 << 20), "mid.img": newGate(32 << 20)}
	s.hashes.slow = func(r io.Reader) io.Reader {
		f := r.(*os.File)
		if g, ok := gates[filepath.Base(f.Name())]; ok {
			return g.wrap(r)
		}
		return r
	}
	t.Cleanup(func() {
		for _, g := range gates {
			g.set(0, errors.New("the test is over"))
		}
	})
	go s.Warm(context.Background())
	waitLog(t, &log, "bty serve: hashed small.img in ")
	srv := httptest.NewServer(s)
	defer srv.Close()
	url := srv.URL + "/catalog.toml"
	client := &http.Client{Timeout: 2 * time.Minute}
	get := func() []byte {
		t.Helper()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatalf("GET /catalog.toml while hashing: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET /catalog.toml while hashing = %d %q, want 200", resp.StatusCode, b)
		}
		return b
	}

	body := get()
	// A client that knows only [[images]] (bty-web's schema, and bty before
	// [[pending_images]]) sees the images it can verify, each with sha256.
	var old struct {
		Version int              `toml:"version"`
		Images  []map[string]any `toml:"images"`
	}
	if err := toml.Unmarshal(body, &old); err != nil || old.Version != 1 || len(old.Images) != 1 || old.Images[0]["name"] != "small.img" || old.Images[0]["sha256"] != sha(small) {
		t.Errorf("[[images]] while hashing = %v, %v; want small.img alone, with its sha256\n%s", old.Images, err, body)
	}
	c, err := Parse(url, body)
	if err != nil {
		t.Fatalf("Parse(served catalog) = %v\n%s", err, body)
	}
	var pending []string
	for _, e := range c.Images {
		if e.Pending {
			pending = append(pending, fmt.Sprintf("%s %d %q", e.Name, e.Size, e.SHA256))
		}
	}
	if want := []string{fmt.Sprintf("big.img %d \"\"", int64(40<<30)), fmt.Sprintf("mid.img %d \"\"", 64<<20)}; !slices.Equal(pending, want) {
		t.Errorf("pending images = %q, want %q", pending, want)
	}
	r := &Resolver{Catalogs: []string{url}}
	if _, err := r.Resolve(context.Background(), "big.img"); !errors.Is(err, ErrPending) || !errors.Is(err, category.ErrSource) {
		t.Errorf("Resolve(big.img) while it is hashed = %v, want ErrPending (a source not available yet)", err)
	}
	// Smallest first: mid.img is hashed before big.img, and its progress is
	// logged (every line here, as ProgressEvery is tiny).
	waitLog(t, &log, "bty serve: hashing mid.img: 50% (32.0 of 64.0 MiB, ")
	if strings.Contains(log.String(), "hashing big.img (") {
		t.Errorf("big.img is hashed before mid.img is done:\n%s", log.String())
	}

	gates["mid.img"].set(1<<62, nil)
	waitLog(t, &log, "bty serve: hashed mid.img in ")
	waitLog(t, &log, "bty serve: hashing big.img (40960.0 MiB)")
	waitLog(t, &log, "bty serve: hashing big.img: 0% (16.0 of 40960.0 MiB, ")
	mid, err := os.ReadFile(filepath.Join(dir, "mid.img"))
	if err != nil {
		t.Fatal(err)
	}
	c, err = Parse(url, get())
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, e := range c.Images {
		listed = append(listed, fmt.Sprintf("%s %v %v", e.Name, e.Pending, e.SHA256 == sha(mid) || e.SHA256 == sha(small)))
	}
	if want := []string{"mid.img false true", "small.img false true", "big.img true false"}; !slices.Equal(listed, want) {
		t.Errorf("images (name, pending, digest right) = %q, want %q", listed, want)
	}
}

func TestServerImage(t *testing.T) {
	dir, img := serveDir(t, 1<<20)
	s := NewServer(ServerOptions{Dir: dir})
	srv := httptest.NewServer(s)
	defer srv.Close()
	url := srv.URL + "/images/disk.img"

	get := func(method string, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, url, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}

	// Before the digest is known: a size-mtime tag.
	resp, body := get("GET", nil)
	weak := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || !bytes.Equal(body, img) || resp.ContentLength != int64(len(img)) || weak == "" || strings.Contains(weak, "sha256") {
		t.Fatalf("GET = %d, %d bytes, length %d, ETag %s, want 200 and the image with a size-mtime ETag", resp.StatusCode, len(body), resp.ContentLength, weak)
	}
	resp, body = get("HEAD", nil)
	if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != int64(len(img)) || resp.Header.Get("Accept-Ranges") != "bytes" {
		t.Errorf("HEAD = %d, %d bytes, length %d, Accept-Ranges %q, want 200, no body, the length, bytes", resp.StatusCode, len(body), resp.ContentLength, resp.Header.Get("Accept-Ranges"))
	}

	s.Warm(context.Background())
	strong := `"sha256:` + sha(img) + `"`
	resp, body = get("GET", map[string]string{"Range": "bytes=1000-1999"})
	if resp.StatusCode != 206 || !bytes.Equal(body, img[1000:2000]) || resp.Header.Get("ETag") != strong {
		t.Errorf("GET Range = %d, %d bytes, ETag %s, want 206, bytes 1000-1999, ETag %s", resp.StatusCode, len(body), resp.Header.Get("ETag"), strong)
	}
	// A download that began before the digest was known resumes.
	resp, body = get("GET", map[string]string{"Range": "bytes=5-", "If-Range": weak})
	if resp.StatusCode != 206 || !bytes.Equal(body, img[5:]) {
		t.Errorf("GET Range If-Range old tag = %d, %d bytes, want 206 and the rest", resp.StatusCode, len(body))
	}
	resp, _ = get("GET", map[string]string{"Range": "bytes=5-", "If-Range": `"other"`})
	if resp.StatusCode != 200 {
		t.Errorf("GET Range If-Range other tag = %d, want 200 (the whole file)", resp.StatusCode)
	}

	// The engine's HTTP source resumes against it.
	hs := &HTTPSource{URL: url}
	rc, size, err := hs.Open(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	rc, size2, err := hs.Open(context.Background(), 777)
	if err != nil {
		t.Fatalf("HTTPSource.Open(777) = %v", err)
	}
	rest, _ := io.ReadAll(rc)
	rc.Close()
	if size != int64(len(img)) || size2 != size || !bytes.Equal(rest, img[777:]) {
		t.Errorf("HTTPSource.Open(777) = size %d/%d, %d bytes, want the rest of the image", size, size2, len(rest))
	}
}

func TestServerRefuses(t *testing.T) {
	dir, _ := serveDir(t, 4096)
	srv := httptest.NewServer(NewServer(ServerOptions{Dir: dir}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	tests := []struct {
		request string
		want    int
	}{
		{"GET /images/../etc/passwd", 400},
		{"GET /images/..%2fetc%2fpasswd", 400},
		{"GET /images/%2e%2e/%2e%2e/etc/passwd", 400},
		{"GET /images/..", 404},
		{"GET /images/%2e%2e", 404},
		{"GET /images/.secret.img", 404},
		{"GET /images/passwd.img", 404}, // symlink
		{"GET /images/sub", 404},        // directory
		{"GET /images/fifo.img", 404},
		{"GET /images/", 404},
		{"GET /images/nope.img", 404},
		{"GET /images/a%00b", 400},
		{"GET /images/..\\etc\\passwd", 400},
		{"GET /etc/passwd", 404},
		{"GET /../etc/passwd", 404},
		{"PUT /images/disk.img", 405},
		{"DELETE /images/disk.img", 405},
		{"POST /catalog.toml", 405},
		{"GET /images/disk.img", 200},
		{"GET /images/readme.txt", 200}, // any plain file in DIR is readable
	}
	for _, tt := range tests {
		t.Run(tt.request, func(t *testing.T) {
			if got := rawStatus(t, addr, tt.request); got != tt.want {
				t.Errorf("%s = %d, want %d", tt.request, got, tt.want)
			}
		})
	}
}

// rawStatus sends a request line as written (no client-side path cleaning)
// and returns the status code.
func rawStatus(t *testing.T, addr, requestLine string) int {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", requestLine, addr)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s: %v", requestLine, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestServerConcurrentRanges(t *testing.T) {
	size := 64 << 20
	if testing.Short() {
		size = 4 << 20
	}
	dir, img := serveDir(t, size)
	s := NewServer(ServerOptions{Dir: dir})
	go s.Warm(context.Background())
	srv := httptest.NewServer(s)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}

	const clients, requests = 32, 16
	var wg sync.WaitGroup
	errs := make(chan error, clients*requests)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := mrand.New(mrand.NewPCG(uint64(c), 1))
			for range requests {
				start := rng.IntN(size)
				end := min(size-1, start+rng.IntN(4<<20))
				req, _ := http.NewRequest("GET", srv.URL+"/images/disk.img", nil)
				req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", start, end))
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 206 || !bytes.Equal(b, img[start:end+1]) {
					errs <- fmt.Errorf("client %d: Range %d-%d = %d, %d bytes, %v, want 206 and the bytes", c, start, end, resp.StatusCode, len(b), err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
