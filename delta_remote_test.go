package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"bty/blockindex"
)

// faultProxy is a proxy on loopback in front of bty serve that counts the
// block bytes it passes and, per its mode, damages what it passes.
type faultProxy struct {
	url    string
	mode   atomic.Value // string: "", "corrupt", "cut", "truncated index", "wrong index"
	blocks atomic.Int64 // block responses passed
	moved  atomic.Int64 // block bytes passed
	image  atomic.Int64 // image bytes passed (/images/)
	swap   [2]string    // for "wrong index": the catalog's lines of one image's index, replaced by another's
}

// lateBlock is how many blocks pass undamaged before the proxy damages
// them: a fault after the delta started writing.
const lateBlock = 2

func newFaultProxy(t *testing.T, upstream string) *faultProxy {
	p := &faultProxy{}
	p.mode.Store("")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, upstream+r.URL.RequestURI(), nil)
		req.Host = r.Host // bty serve's catalog names the proxy
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		mode := p.mode.Load().(string)
		block := strings.Contains(r.URL.Path, "/blocks/sha256/")
		late := block && p.blocks.Add(1) > lateBlock
		if late && mode != "" {
			// The blocks that passed reach the writer first.
			time.Sleep(500 * time.Millisecond)
		}
		switch {
		case r.URL.Path == "/catalog.toml" && mode == "wrong index":
			body = []byte(strings.Replace(string(body), p.swap[0], p.swap[1], 1))
		case strings.HasSuffix(r.URL.Path, ".index") && mode == "truncated index":
			body = body[:len(body)/2]
		case late && mode == "corrupt":
			body[len(body)/2] ^= 0x55
		case late && mode == "cut":
			conn, buf, _ := w.(http.Hijacker).Hijack()
			fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(body))
			buf.Write(body[:len(body)/2])
			buf.Flush()
			conn.Close()
			return
		}
		if block {
			p.moved.Add(int64(len(body)))
		}
		if strings.Contains(r.URL.Path, "/images/") {
			p.image.Add(int64(len(body)))
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.WriteHeader(resp.StatusCode)
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

var indexLineRE = regexp.MustCompile(`(?m)^block_index = .*\nblock_index_digest = .*$`)

// indexedCatalog serves v1.img and v2.img from a real bty serve and waits
// until its catalog names a block index for both.
func indexedCatalog(t *testing.T, v1, v2 string) (upstream string, catalog []byte) {
	t.Helper()
	images := t.TempDir()
	for _, f := range []string{v1, v2} {
		b, _ := os.ReadFile(f)
		writeFile(t, filepath.Join(images, filepath.Base(f)), b)
	}
	p := startFleet(t, images, t.TempDir(), "127.0.0.1:0")
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(p.url + "/catalog.toml")
		if err == nil {
			catalog, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if len(indexLineRE.FindAll(catalog, -1)) == 2 {
				return p.url, catalog
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("bty serve's catalog names no block index for both images after 2 minutes:\n%s", catalog)
		}
	}
}

// dataBlocks counts the blocks of img that are not all zeros: what a target
// holding none of them fetches.
func dataBlocks(img []byte, size int) int64 {
	var n int64
	for off := 0; off < len(img); off += size {
		b := img[off:min(off+size, len(img))]
		if !bytes.Equal(b, make([]byte, len(b))) {
			n++
		}
	}
	return n
}

// TestDeltaRemote: --delta with a catalog entry that has a block index, from
// a real bty serve through a proxy on loopback. On targets that hold an
// older version, the same image, random bytes, with 512- and 4096-byte
// sectors, the target ends as a full flash leaves it, and only the blocks
// the target lacks are fetched (on random bytes, only until it is clear the
// disk lacks the image: then the image is streamed). A corrupted block, a cut connection, a
// truncated index and another image's index each fail with exit 4 or 5; a
// target that the delta began to write is left without a partition table,
// one it had not, untouched.
func TestDeltaRemote(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	v1, v2, img2 := deltaVersions(t, dir)
	upstream, cat := indexedCatalog(t, v1, v2)
	px := newFaultProxy(t, upstream)
	// The catalog names the host it is asked by: the proxy.
	idx := indexLineRE.FindAllString(strings.ReplaceAll(string(cat), upstream, px.url), -1)
	px.swap = [2]string{idx[1], idx[0]} // v2's entry comes second
	catalogURL := px.url + "/catalog.toml"

	for _, tc := range []struct {
		name     string
		sector   int
		before   string
		mode     string
		code     int
		maxBlock int64 // at most this many blocks fetched (on success); -1: every data block of the image
	}{
		{"older", 512, v1, "", 0, 9},
		{"older 4096", 4096, v1, "", 0, 9},
		// The first block differs from the image on a disk larger than it:
		// its partition table was rewritten for the disk (the GPT relocated).
		{"same", 512, v2, "", 0, 1},
		{"random", 512, "", "", 0, -1},
		{"corrupt block", 512, v1, "corrupt", 4, 0},
		{"cut connection", 512, v1, "cut", 5, 0},
		{"truncated index", 512, v1, "truncated index", 4, 0},
		{"wrong index", 512, v1, "wrong index", 4, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := randomBytes(t, 32<<20)
			full, delta := loopHolding(t, start, tc.sector), loopHolding(t, start, tc.sector)
			if tc.before != "" {
				for _, dev := range []string{full, delta} {
					flashOK(t, "--image", tc.before, "--disk", dev)
				}
			}
			held := readDev(t, delta, 32<<20)
			flashOK(t, "--image", v2, "--disk", full)
			px.mode.Store(tc.mode)
			px.blocks.Store(0)
			px.moved.Store(0)
			px.image.Store(0)
			was := sectorsWritten(t, delta)
			r := runBty(t, "--catalog", catalogURL, "--image", "v2.img", "--disk", delta, "--yes", "--delta", "--verify", "--json")
			wrote := (sectorsWritten(t, delta) - was) * 512
			if r.code != tc.code {
				t.Fatalf("bty --delta = exit %d, want %d\n%s%s", r.code, tc.code, r.stdout, r.stderr)
			}
			res := lastResult(t, r.stdout)
			got := readDev(t, delta, 32<<20)
			if tc.code != 0 {
				t.Logf("%s: %s (target %s)", tc.name, res.Error, res.TargetState)
				switch {
				case res.TargetState == "untouched" && !bytes.Equal(got, held):
					t.Errorf("result says untouched, but the target changed: %s", firstDiff(got, held))
				case res.TargetState != "untouched" && !bytes.Equal(got[:1<<20], make([]byte, 1<<20)):
					t.Errorf("target %s after a failed delta, but its first MiB is not zero", res.TargetState)
				case tc.mode == "corrupt" || tc.mode == "cut":
					if res.TargetState != "no_partition_table" {
						t.Errorf("target_state = %q after a fault in block %d, want no_partition_table", res.TargetState, lateBlock+1)
					}
				}
				return
			}
			if want := readDev(t, full, 32<<20); !bytes.Equal(got, want) {
				t.Fatalf("delta target vs full flash: %s", firstDiff(got, want))
			}
			t.Logf("%d blocks fetched (%d bytes, the proxy passed %d), written %d, zeroed %d, skipped %d; the device counted %d bytes written",
				res.FetchedBlocks, res.Fetched, px.moved.Load(), res.Written, res.Zeroed, res.Skipped, wrote)
			// On random bytes the first eighth of the image's data is not
			// there: bty stops fetching blocks and streams the image.
			fellBack := tc.before == ""
			if tc.maxBlock < 0 {
				tc.maxBlock = (dataBlocks(img2, blockindex.DefaultBlockSize)+7)/8 + 4 // + the fetches under way
			}
			// (A fallback cancels the block fetches under way: what they
			// had received is not counted.)
			if res.FetchedBlocks > tc.maxBlock || res.Fetched > px.moved.Load()+px.image.Load() || !fellBack && res.Fetched != px.moved.Load() {
				t.Errorf("%d blocks fetched, %d bytes (the proxy passed %d of blocks, %d of the image); want at most %d blocks, the bytes the proxy counted",
					res.FetchedBlocks, res.Fetched, px.moved.Load(), px.image.Load(), tc.maxBlock)
			}
			if got := px.image.Load() == int64(len(img2)) && len(res.Warnings) == 1; got != fellBack {
				t.Errorf("the image was streamed: %v (%d bytes, warnings %q), want %v", got, px.image.Load(), res.Warnings, fellBack)
			}
			if tc.name == "same" && (wrote != 0 || res.Written != 0) {
				t.Errorf("same image: %d bytes written to the device (result %d), want none", wrote, res.Written)
			}
			if !res.Verified || res.SHA256 != sha256Hex(img2) {
				t.Errorf("result verified %v sha256 %s, want verified and the image's digest %s", res.Verified, res.SHA256, sha256Hex(img2))
			}
		})
	}

	// Without a block index (the image by its URL, no catalog), the delta
	// reads the whole image from the server and compares.
	t.Run("no index", func(t *testing.T) {
		px.mode.Store("")
		dev := loopHolding(t, randomBytes(t, 32<<20), 512)
		flashOK(t, "--image", v1, "--disk", dev)
		res := flashOK(t, "--image", px.url+"/images/v2.img", "--disk", dev, "--delta")
		got := readDev(t, dev, len(img2))
		if !bytes.Equal(got[1<<20:len(img2)-1<<20], img2[1<<20:len(img2)-1<<20]) || res.FetchedBlocks != 0 || res.Skipped == 0 {
			t.Errorf("delta without an index: blocks fetched %d, skipped %d; want none fetched, most skipped, the image on the target", res.FetchedBlocks, res.Skipped)
		}
	})
}

// servedCounts reads bty serve's counters of what it served from /metrics:
// "bytes image", "requests block", ...
func servedCounts(t *testing.T, base string) map[string]int64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]int64{}
	for _, m := range servedLineRE.FindAllStringSubmatch(string(b), -1) {
		n, _ := strconv.ParseInt(m[3], 10, 64)
		out[m[1]+" "+m[2]] = n
	}
	if len(out) != 6 {
		t.Fatalf("GET %s/metrics has %d bty_served_* lines, want 6:\n%s", base, len(out), b)
	}
	return out
}

var servedLineRE = regexp.MustCompile(`(?m)^bty_served_(bytes|requests)_total\{kind="(\w+)"\} (\d+)$`)

// TestServeCountsServed: the fleet server's /metrics counts exactly what a
// client received: for a delta over HTTP, the index once and the blocks
// the client says it fetched, to the byte; for a full flash, the image.
func TestServeCountsServed(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	v1, v2, _ := deltaVersions(t, dir)
	base, _ := indexedCatalog(t, v1, v2)
	dev := loopHolding(t, randomBytes(t, 32<<20), 512)
	flashOK(t, "--image", v1, "--disk", dev)

	before := servedCounts(t, base)
	res := flashOK(t, "--catalog", base+"/catalog.toml", "--image", "v2.img", "--disk", dev, "--delta")
	after := servedCounts(t, base)
	diff := func(k string) int64 { return after[k] - before[k] }
	t.Logf("delta: the client fetched %d blocks, %d bytes; the server counted %d blocks, %d bytes, %d index (%d bytes), %d images",
		res.FetchedBlocks, res.Fetched, diff("requests block"), diff("bytes block"), diff("requests index"), diff("bytes index"), diff("requests image"))
	if res.FetchedBlocks == 0 || diff("requests block") != res.FetchedBlocks || diff("bytes block") != res.Fetched {
		t.Errorf("the server counted %d blocks of %d bytes, the client fetched %d of %d: want the same, and some", diff("requests block"), diff("bytes block"), res.FetchedBlocks, res.Fetched)
	}
	if diff("requests index") != 1 || diff("bytes index") == 0 || diff("requests image") != 0 {
		t.Errorf("the server counted %d indexes (%d bytes) and %d images for a delta, want the one index and no image", diff("requests index"), diff("bytes index"), diff("requests image"))
	}

	before = servedCounts(t, base)
	res = flashOK(t, "--image", base+"/images/v2.img", "--disk", dev)
	after = servedCounts(t, base)
	if diff("requests image") != 1 || diff("bytes image") != res.SourceBytes || res.SourceBytes == 0 {
		t.Errorf("full flash: the server counted %d images of %d bytes, the client read %d bytes: want one image, the same bytes", diff("requests image"), diff("bytes image"), res.SourceBytes)
	}
}
