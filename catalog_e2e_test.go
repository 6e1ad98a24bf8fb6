package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"bty/catalog"
	"bty/catalog/catalogtest"
)

// TestCatalogServeFlash flashes an image named in the catalog of an in-process
// bty serve, the way a team shares images: bty --catalog URL --image NAME.
func TestCatalogServeFlash(t *testing.T) {
	requireRoot(t)
	requireTool(t, "gzip")
	dir := t.TempDir()
	size := 5<<20 + 1234
	raw, want := testImage(t, dir, size)
	images := filepath.Join(dir, "images")
	if err := os.Mkdir(images, 0o755); err != nil {
		t.Fatal(err)
	}
	sh(t, fmt.Sprintf("gzip -c %s > %s/debian.img.gz", raw, images))
	gz, err := os.ReadFile(filepath.Join(images, "debian.img.gz"))
	if err != nil {
		t.Fatal(err)
	}

	// A second catalog lists the same bytes under another src with a wrong
	// digest: flashing it must fail the digest check.
	var srvURL string
	srv := httptest.NewUnstartedServer(nil)
	srvURL = "http://" + srv.Listener.Addr().String()
	bad, err := catalog.Parse("bad.toml", fmt.Appendf(nil, "version = 1\n[[images]]\nname = \"wrong-digest.img.gz\"\nsrc = %q\nsha256 = %q\n",
		srvURL+"/images/debian.img.gz?copy", strings.Repeat("0", 64)))
	if err != nil {
		t.Fatal(err)
	}
	cs := catalog.NewServer(catalog.ServerOptions{Dir: images, Catalogs: []*catalog.Catalog{bad}})
	cs.Warm(context.Background()) // the digests are known before the first /catalog.toml
	srv.Config.Handler = cs
	srv.Start()
	defer srv.Close()
	cat := srvURL + "/catalog.toml"

	dev := newLoop(t, 8<<20, 512)
	r := runBty(t, "--catalog", cat, "--image", "debian.img.gz", "--disk", dev, "--yes", "--json")
	if r.code != 0 {
		t.Fatalf("bty --catalog %s --image debian.img.gz = exit %d, want 0\n%s%s", cat, r.code, r.stdout, r.stderr)
	}
	if got := readDev(t, dev, size); !bytes.Equal(got, want) {
		t.Errorf("target after flashing from bty serve: %s", firstDiff(got, want))
	}
	if res := lastResult(t, r.stdout); res.SHA256 != sha256Hex(gz) || res.Format != "gzip" {
		t.Errorf("result = sha256 %s format %s, want %s gzip", res.SHA256, res.Format, sha256Hex(gz))
	}

	r = runBty(t, "--catalog", cat, "--image", "wrong-digest.img.gz", "--disk", dev, "--yes", "--json")
	if r.code != exitIntegrity || !strings.Contains(r.stdout, "sha256 mismatch") {
		t.Errorf("bty --image wrong-digest.img.gz = exit %d, want %d (digest mismatch)\n%s", r.code, exitIntegrity, r.stdout+r.stderr)
	}
	if res := lastResult(t, r.stdout); res.SHA256Source == nil || *res.SHA256Source != "catalog" || res.SHA256 != sha256Hex(gz) {
		t.Errorf("result of a catalog digest mismatch: sha256_source %v sha256 %q, want catalog and the real digest %s", res.SHA256Source, res.SHA256, sha256Hex(gz))
	}
	r = runBty(t, "--catalog", cat, "--image", "nope.img", "--disk", dev, "--yes")
	if r.code != exitSource || !strings.Contains(r.stderr, "bty images") {
		t.Errorf("bty --image nope.img = exit %d, want %d with a hint\n%s", r.code, exitSource, r.stderr)
	}
}

// TestCatalogOrasFlash flashes the disk-image layer of an artifact in a real
// registry, and checks the exits for a tampered blob, a missing tag and an
// image index.
func TestCatalogOrasFlash(t *testing.T) {
	requireRoot(t)
	reg := catalogtest.StartRegistry(t)
	dir := t.TempDir()
	size := 3<<20 + 4321
	_, want := testImage(t, dir, size)
	sig := randomBytes(t, 4<<20)
	layers := reg.Push(t, "bty/debian", "13",
		catalogtest.Layer{MediaType: "application/vnd.dev.cosign.simplesigning.v1+json", Title: "cosign.sig", Data: sig},
		catalogtest.Layer{MediaType: "application/spdx+json", Title: "sbom.spdx.json", Data: sig},
		catalogtest.Layer{MediaType: "application/vnd.bty.disk", Title: "debian-13.img", Data: want},
		catalogtest.Layer{MediaType: "text/plain", Title: "debian-13.img.sha256", Data: append([]byte(sha256Hex(want)+"\n"), sig...)},
	)
	tampered := reg.Push(t, "bty/tampered", "1", catalogtest.Layer{MediaType: "application/vnd.bty.disk", Title: "t.img", Data: randomBytes(t, 2<<20)})
	reg.Tamper(t, tampered[0].Digest)
	// Layers stored with another length than their descriptors name.
	longer := reg.Push(t, "bty/longer", "1", catalogtest.Layer{MediaType: "application/vnd.bty.disk", Title: "l.img", Data: randomBytes(t, 2<<20)})
	reg.Resize(t, longer[0].Digest, 2<<20+4096)
	shorter := reg.Push(t, "bty/shorter", "1", catalogtest.Layer{MediaType: "application/vnd.bty.disk", Title: "s.img", Data: randomBytes(t, 2<<20)})
	reg.Resize(t, shorter[0].Digest, 1<<20)
	reg.PushIndex(t, "bty/multi", "latest")
	dev := newLoop(t, 8<<20, 4096)

	ref := "oras://" + reg.Host + "/bty/debian:13"
	r := runBty(t, "--image", ref, "--disk", dev, "--yes", "--json")
	if r.code != 0 {
		t.Fatalf("bty --image %s = exit %d, want 0\n%s%s", ref, r.code, r.stdout, r.stderr)
	}
	if got := readDev(t, dev, size); !bytes.Equal(got, want) {
		t.Errorf("target after flashing %s: %s", ref, firstDiff(got, want))
	}
	if res := lastResult(t, r.stdout); res.SHA256 != layers[2].Digest.Encoded() || res.SHA256Source == nil || *res.SHA256Source != "registry" {
		t.Errorf("result sha256 = %s from %v, want the layer digest %s from the registry", res.SHA256, res.SHA256Source, layers[2].Digest.Encoded())
	}

	tests := []struct {
		name, ref string
		code      int
		msg       string
	}{
		{"tampered blob", "bty/tampered:1", exitIntegrity, "sha256"},
		{"longer blob", "bty/longer:1", exitIntegrity, "other bytes than it names"},
		{"shorter blob", "bty/shorter:1", exitIntegrity, "other bytes than it names"},
		{"missing tag", "bty/debian:99", exitSource, "not found"},
		{"missing repository", "bty/nothing:1", exitSource, "not found"},
		{"image index", "bty/multi:latest", exitUsage, "pick a platform digest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runBty(t, "--image", "oras://"+reg.Host+"/"+tt.ref, "--disk", dev, "--yes")
			if r.code != tt.code || !strings.Contains(r.stderr, tt.msg) {
				t.Errorf("bty --image oras://.../%s = exit %d, want %d with %q\n%s", tt.ref, r.code, tt.code, tt.msg, r.stderr)
			}
		})
	}
}

// TestCatalogCommands runs bty images and bty catalog check as a user would.
func TestCatalogCommands(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "local.img.xz"), []byte{0xfd, '7', 'z', 'X', 'Z', 0, 1, 2})
	writeFile(t, filepath.Join(root, "local.img.xz.sha256"), []byte(strings.Repeat("ab", 32)+"  local.img.xz\n"))
	writeFile(t, filepath.Join(root, ".hidden.img"), []byte{0x1f, 0x8b})
	good := filepath.Join(dir, "good.toml")
	writeFile(t, good, []byte(`version = 1
server_generated = true
[[images]]
name = "debian-13.img.xz"
src = "https://example.com/debian-13.img.xz"
size_bytes = 1048576
format = "img.xz"
mirror_count = 3
`))
	bad := filepath.Join(dir, "bad.toml")
	writeFile(t, bad, []byte(`version = 1
[[images]]
name = "a"
src = "file:///srv/a.img"
[[images]]
name = "b"
src = "https://h/b"
sha256 = "xyz"
[[images]]
name = "a"
src = "https://h/c"
`))
	env := []string{"BTY_IMAGE_ROOT=" + root}

	r := runBtyEnv(t, env, "images", "--catalog", good, "--json")
	var rows []catalog.Entry
	if err := json.Unmarshal([]byte(r.stdout), &rows); r.code != 0 || err != nil {
		t.Fatalf("bty images --json = exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	var names []string
	for _, row := range rows {
		names = append(names, row.Name+" "+row.Format+" "+row.From)
	}
	wantNames := []string{"local.img.xz img.xz " + root, "debian-13.img.xz img.xz " + good}
	if strings.Join(names, "|") != strings.Join(wantNames, "|") {
		t.Errorf("bty images --json rows = %q, want %q", names, wantNames)
	}

	r = runBtyEnv(t, env, "images", "--catalog", good)
	if r.code != 0 || !strings.Contains(r.stdout, "NAME") || !strings.Contains(r.stdout, "debian-13.img.xz  img.xz  1.0 MiB  unknown") || !strings.Contains(r.stdout, "local.img.xz") {
		t.Errorf("bty images = exit %d\n%s%s, want a table with both images", r.code, r.stdout, r.stderr)
	}

	r = runBty(t, "catalog", "check", good)
	if r.code != 0 || r.stdout != good+": ok, 1 image, 3 warnings\n" {
		t.Errorf("bty catalog check good = exit %d %q, want 0 and ok with the warnings counted", r.code, r.stdout)
	}
	r = runBty(t, "catalog", "check", bad)
	wantProblems := []string{
		bad + ` line 4: image "a": src "file:///srv/a.img": file:// is not allowed in a catalog: put local images in the image root`,
		bad + ` line 8: image "b": sha256 "xyz" is not 64 hex digits: fix or remove it`,
		bad + ` line 10: image "a": name is also used by the image on line 2: give each image its own name`,
	}
	for _, p := range wantProblems {
		if !strings.Contains(r.stderr, p+"\n") {
			t.Errorf("bty catalog check bad: stderr lacks %q\n%s", p, r.stderr)
		}
	}
	if r.code != exitUsage {
		t.Errorf("bty catalog check bad = exit %d, want %d", r.code, exitUsage)
	}
	r = runBty(t, "catalog", "check", filepath.Join(dir, "missing.toml"))
	if r.code != exitSource {
		t.Errorf("bty catalog check missing = exit %d, want %d\n%s", r.code, exitSource, r.stderr)
	}
	r = runBty(t, "--catalog", bad, "--image", "a", "--disk", filepath.Join(dir, "out.img"), "--yes")
	if r.code != exitUsage || !strings.Contains(r.stderr, "file:// is not allowed") {
		t.Errorf("bty --catalog bad --image a = exit %d, want %d naming the problem\n%s", r.code, exitUsage, r.stderr)
	}

	// An image root entry is found by its file name, wherever bty runs.
	plain := randomBytes(t, 1<<20+333)
	plain[510], plain[511] = 0x55, 0xaa
	writeFile(t, filepath.Join(root, "plain.img"), plain)
	out := filepath.Join(dir, "out.img")
	r = runBtyEnv(t, env, "--image", "plain.img", "--disk", out, "--yes")
	if got, _ := os.ReadFile(out); r.code != 0 || !bytes.Equal(got, plain) {
		t.Errorf("BTY_IMAGE_ROOT=root bty --image plain.img = exit %d, target %s, want 0 and the image\n%s", r.code, firstDiff(got, plain), r.stderr)
	}
}

// TestCatalogCheckWarnings: bty catalog check warns about what is valid but
// probably a mistake, and --strict refuses it; a flash from the same catalog
// reads it as before (unknown keys ignored).
func TestCatalogCheckWarnings(t *testing.T) {
	dir := t.TempDir()
	cat := filepath.Join(dir, "typos.toml")
	writeFile(t, cat, []byte(`version = 1

[[images]]
name = "a.img"
src = "https://example.com/a.img"
sha265 = "`+strings.Repeat("ab", 32)+`"

[[image]]
name = "b.img"
src = "https://example.com/b.img"
sha256 = "`+strings.Repeat("cd", 32)+`"

[[images]]
name = "c.img"
src = "oras://ghcr.io/example/c:v1"
`))
	want := []string{
		"warning: " + cat + ` line 3: image "a.img": no sha256: bty would flash it without checking its digest (add sha256 = "<64 hex digits>")`,
		"warning: " + cat + ` line 6: image "a.img": unknown key "sha265" is ignored: did you mean "sha256"?`,
		"warning: " + cat + ` line 8: unknown table [[image]] is ignored: did you mean [[images]]?`,
	}
	r := runBty(t, "catalog", "check", cat)
	if r.code != 0 || r.stdout != cat+": ok, 2 images, 3 warnings\n" || r.stderr != strings.Join(want, "\n")+"\n" {
		t.Errorf("bty catalog check = exit %d, stdout %q, stderr\n%s\nwant exit 0, ok with 3 warnings, and on stderr\n%s", r.code, r.stdout, r.stderr, strings.Join(want, "\n"))
	}
	r = runBty(t, "catalog", "check", "--strict", cat)
	if r.code != exitUsage || r.stdout != "" || !strings.HasSuffix(r.stderr, "bty: "+cat+": 3 warnings: the catalog is refused (--strict)\n") {
		t.Errorf("bty catalog check --strict = exit %d, stdout %q, stderr\n%s\nwant exit 2 refusing the 3 warnings", r.code, r.stdout, r.stderr)
	}
	r = runBty(t, "catalog", "check", "--strict", "--json", cat)
	var res struct {
		OK       bool
		Problems []struct{ Line int }
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code != exitUsage || res.OK || len(res.Problems) != 3 {
		t.Errorf("bty catalog check --strict --json = exit %d, %+v, %v, want exit 2, not ok, 3 problems\n%s", r.code, res, err, r.stdout)
	}
	// Loading for a flash stays lenient: the images are listed as written.
	r = runBtyEnv(t, []string{"BTY_IMAGE_ROOT=" + dir}, "images", "--catalog", cat)
	if r.code != 0 || !strings.Contains(r.stdout, "a.img ") || !strings.Contains(r.stdout, "c.img ") || strings.Contains(r.stdout, "b.img") {
		t.Errorf("bty images --catalog typos.toml = exit %d\n%s%s\nwant a.img and c.img listed", r.code, r.stdout, r.stderr)
	}
}

// TestCatalogServeCommand runs bty serve and talks to it over loopback.
func TestCatalogServeCommand(t *testing.T) {
	dir := t.TempDir()
	img := make([]byte, 1<<20)
	img[510], img[511] = 0x55, 0xaa
	writeFile(t, filepath.Join(dir, "disk.img"), img)
	// A 40 GiB image (sparse: nothing on disk) takes minutes to hash: the
	// catalog answers meanwhile, with it pending.
	writeFile(t, filepath.Join(dir, "big.img"), nil)
	if err := os.Truncate(filepath.Join(dir, "big.img"), 40<<30); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(btyBin, "serve", "--images", dir, "--listen", addr)
	// The log goes to a file, read while bty serve writes it.
	logFile, err := os.Create(filepath.Join(t.TempDir(), "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd.Stderr = logFile
	logs := func() string {
		b, _ := os.ReadFile(logFile.Name())
		return string(b)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Errorf("bty serve did not stop on SIGINT")
		}
	}()
	// Until bty serve listens; then until disk.img is hashed (at once, as
	// it is hashed first, being the smaller).
	var body bytes.Buffer
	var c *catalog.Catalog
	for i := 0; i < 600; i++ {
		var resp *http.Response
		if resp, err = http.Get("http://" + addr + "/catalog.toml"); err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		body.Reset()
		body.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET /catalog.toml = %d %q, want 200", resp.StatusCode, body.String())
		}
		if c, err = catalog.Parse("served", body.Bytes()); err != nil || len(c.Images) == 0 || !c.Images[0].Pending {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("GET /catalog.toml: %v\n%s", err, logs())
	}
	if len(c.Images) != 2 || c.Images[0].Name != "disk.img" || c.Images[0].SHA256 != sha256Hex(img) || c.Images[0].Src != "http://"+addr+"/images/disk.img" ||
		c.Images[1].Name != "big.img" || !c.Images[1].Pending {
		t.Errorf("served catalog = %+v, want disk.img with its sha256 and src, and big.img pending\n%s", c, body.String())
	}
	cat := "http://" + addr + "/catalog.toml"
	r := runBty(t, "images", "--catalog", cat)
	if !regexp.MustCompile(`(?m)^big\.img +img +40\.0 GiB +pending `).MatchString(r.stdout) || !regexp.MustCompile(`(?m)^disk\.img +img +1\.0 MiB +known `).MatchString(r.stdout) {
		t.Errorf("bty images --catalog %s = exit %d\n%s%s\nwant big.img pending and disk.img known", cat, r.code, r.stdout, r.stderr)
	}
	r = runBty(t, "--catalog", cat, "--image", "big.img", "--disk", filepath.Join(t.TempDir(), "out.img"), "--yes")
	if r.code != exitSource || !strings.Contains(r.stderr, `image "big.img": its server is still computing its sha256`) {
		t.Errorf("bty --image big.img while it is hashed = exit %d %q, want %d saying its digest is not computed yet", r.code, r.stderr, exitSource)
	}
	if !strings.Contains(logs(), "bty serve: hashing big.img (40960.0 MiB)") {
		t.Errorf("bty serve's log does not say it hashes big.img:\n%s", logs())
	}
	if r := rawRequest(t, addr, "GET /images/../../etc/passwd"); !strings.HasPrefix(r, "HTTP/1.1 400") {
		t.Errorf("GET /images/../../etc/passwd = %q, want 400", r)
	}
}

// rawRequest sends a request line as written and returns the status line.
func rawRequest(t *testing.T, addr, line string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", line, addr)
	buf := make([]byte, 64)
	n, _ := conn.Read(buf)
	status, _, _ := strings.Cut(string(buf[:n]), "\r\n")
	return status
}
