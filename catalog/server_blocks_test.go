package catalog

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"bty/blockindex"
)

// TestServerBlocks: bty serve indexes every image, keeps the blocks two
// versions share once, lists each index in the catalog, and serves indexes
// and blocks that a client can check against the catalog and the index.
// Its /metrics counts exactly the images, blocks and indexes the client
// received and their bytes.
func TestServerBlocks(t *testing.T) {
	const bs = blockindex.DefaultBlockSize
	const n = 16
	v1 := make([]byte, n*bs+12345) // the last block is short
	rand.Read(v1)
	v2 := bytes.Clone(v1)
	rand.Read(v2[3*bs+100 : 3*bs+200]) // two blocks of v1 changed in v2
	rand.Read(v2[9*bs : 9*bs+1])
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(v1)
	zw.Close()

	dir, blocks := t.TempDir(), t.TempDir()
	for name, b := range map[string][]byte{"v1.img": v1, "v2.img": v2, "v1.img.gz": gz.Bytes()} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	store, err := blockindex.OpenStore(blocks)
	if err != nil {
		t.Fatal(err)
	}
	var log syncBuffer
	s := NewServer(ServerOptions{Dir: dir, Blocks: store, Log: &log, Decode: func(_ context.Context, path string) (io.ReadCloser, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		return gzip.NewReader(f) // the test's decoder: bty serve's is flash's
	}})
	s.Warm(t.Context())

	files, _ := filepath.Glob(filepath.Join(blocks, "sha256", "*"))
	var stored int64
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		stored += fi.Size()
	}
	// v1's 17 blocks, v2's 2 changed ones; the gzip image decodes to v1.
	if len(files) != n+1+2 {
		t.Errorf("the store holds %d blocks, want %d (v1's and the 2 that v2 changed)\n%s", len(files), n+3, log.String())
	}
	if distinct := int64(len(v1) + 2*bs); stored < distinct || stored > distinct+distinct/64 {
		t.Errorf("the store holds %d bytes of blocks, want about %d (random blocks do not compress; shared ones are kept once)", stored, distinct)
	}

	srv := httptest.NewServer(s)
	defer srv.Close()
	received := map[string][2]int64{} // kind: {responses, bytes} of the 2xx GETs
	get := func(path string, hdr ...string) (*http.Response, []byte) {
		t.Helper()
		method := "GET"
		if len(hdr) == 1 {
			method = hdr[0]
		}
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if kind := servedKind(path); kind != "" && method == "GET" && resp.StatusCode/100 == 2 {
			received[kind] = [2]int64{received[kind][0] + 1, received[kind][1] + int64(len(b))}
		}
		return resp, b
	}
	_, body := get("/catalog.toml")
	c, err := Parse(srv.URL+"/catalog.toml", body)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]Entry{}
	for _, e := range c.Images {
		rows[e.Name] = e
	}
	if a, b := rows["v1.img"], rows["v1.img.gz"]; a.BlockIndexDigest == "" || a.BlockIndexDigest != b.BlockIndexDigest {
		t.Errorf("v1.img and v1.img.gz list the block indexes %q and %q, want the same one (same decoded image)\n%s", a.BlockIndexDigest, b.BlockIndexDigest, body)
	}
	for name, img := range map[string][]byte{"v1.img": v1, "v2.img": v2} {
		e := rows[name]
		if !strings.HasPrefix(e.BlockIndex, srv.URL+"/blocks/") {
			t.Fatalf("%s: block_index = %q, want a URL under %s/blocks/\n%s", name, e.BlockIndex, srv.URL, body)
		}
		resp, enc := get(strings.TrimPrefix(e.BlockIndex, srv.URL))
		if resp.StatusCode != 200 || "sha256:"+sha(enc) != e.BlockIndexDigest {
			t.Fatalf("GET %s = %d, sha256:%s, want 200 and the catalog's block_index_digest %s", e.BlockIndex, resp.StatusCode, sha(enc), e.BlockIndexDigest)
		}
		ix, err := blockindex.Decode(bytes.NewReader(enc))
		if err != nil {
			t.Fatal(err)
		}
		if ix.Digest != "sha256:"+sha(img) || ix.Length != int64(len(img)) {
			t.Errorf("%s: index of %d bytes, %s; want the decoded image's %d bytes, sha256:%s", name, ix.Length, ix.Digest, len(img), sha(img))
		}
		for i, sum := range ix.Blocks {
			// The block URL is sha256/<hex> relative to the index's (docs/delta.md).
			path := strings.TrimPrefix(e.BlockIndex[:strings.LastIndex(e.BlockIndex, "/")+1], srv.URL) + "sha256/" + blockindex.Hex(sum)
			resp, packed := get(path)
			if resp.StatusCode != 200 {
				t.Fatalf("GET %s = %d", path, resp.StatusCode)
			}
			b, err := blockindex.Unpack(packed, sum, ix.Len(i))
			if err != nil {
				t.Fatalf("%s block %d: %v", name, i, err)
			}
			if off := i * bs; !bytes.Equal(b, img[off:off+len(b)]) {
				t.Fatalf("%s block %d differs from the image's", name, i)
			}
			if i == 0 {
				etag := `"sha256:` + blockindex.Hex(sum) + `"`
				if h := resp.Header; h.Get("ETag") != etag || !strings.Contains(h.Get("Cache-Control"), "immutable") || h.Get("Content-Type") != "application/zstd" {
					t.Errorf("GET %s: headers %v, want ETag %s, Cache-Control immutable, Content-Type application/zstd", path, h, etag)
				}
				if resp, _ := get(path, "If-None-Match", etag); resp.StatusCode != http.StatusNotModified {
					t.Errorf("GET %s If-None-Match its ETag = %d, want 304", path, resp.StatusCode)
				}
			}
		}
	}
	missing := sha256.Sum256([]byte("not stored"))
	for _, path := range []string{
		"/blocks/sha256/" + blockindex.Hex(missing),
		"/blocks/sha256/" + strings.ToUpper(blockindex.Hex(missing)),
		"/blocks/sha256/abc",
		"/blocks/" + blockindex.Hex(missing) + ".index",
		"/blocks/sha256/" + blockindex.Hex(missing) + ".index",
		"/blocks/",
	} {
		if resp, _ := get(path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, resp.StatusCode)
		}
	}
	if resp, err := http.Post(srv.URL+"/blocks/sha256/"+blockindex.Hex(missing), "application/zstd", nil); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST a block = %v %v, want 405", resp.Status, err)
	}

	// Whole images and ranges count as images; HEAD, 304 and 404 not at all.
	get("/images/v1.img.gz")
	get("/images/v2.img", "Range", "bytes=100-4195")
	get("/images/v2.img", "HEAD")
	get(strings.TrimPrefix(rows["v1.img"].BlockIndex, srv.URL), "HEAD")
	get("/images/missing.img")
	_, metrics := get("/metrics")
	for _, kind := range []string{ServedImage, ServedBlock, ServedIndex} {
		want := fmt.Sprintf("bty_served_requests_total{kind=%q} %d\n", kind, received[kind][0]) +
			fmt.Sprintf("bty_served_bytes_total{kind=%q} %d\n", kind, received[kind][1])
		for _, line := range strings.SplitAfter(want, "\n")[:2] {
			if !strings.Contains(string(metrics), line) {
				t.Errorf("GET /metrics has no line %q: the client received %d responses of %d bytes\n%s", strings.TrimSpace(line), received[kind][0], received[kind][1], metrics)
			}
		}
	}
	if received[ServedImage] != [2]int64{2, int64(len(gz.Bytes()) + 4096)} {
		t.Errorf("the test's own count of images received = %v, want 2 responses of %d bytes", received[ServedImage], len(gz.Bytes())+4096)
	}
}

// TestServerNoBlocks: without a block store nothing is indexed or served
// under /blocks/, and the catalog names no index.
func TestServerNoBlocks(t *testing.T) {
	dir, _ := serveDir(t, 1<<20)
	srv := httptest.NewServer(NewServer(ServerOptions{Dir: dir}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/catalog.toml")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if bytes.Contains(body, []byte("block_index")) {
		t.Errorf("catalog without a block store names a block index:\n%s", body)
	}
	if resp, err := http.Get(srv.URL + "/blocks/sha256/" + strings.Repeat("0", 64)); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /blocks/ without a store = %v %v, want 404", resp.Status, err)
	}
}
