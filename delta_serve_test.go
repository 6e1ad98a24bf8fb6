package main

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"bty/blockindex"
	"bty/catalog"
)

// TestServeBlockIndex runs bty serve on loopback over a raw image and a
// gzip-compressed later version of it: both get a block index in the
// catalog, the blocks they share are stored once, and every block fetched
// over HTTP is the image's block, with the digest the index gives it.
func TestServeBlockIndex(t *testing.T) {
	const bs = blockindex.DefaultBlockSize
	v1 := make([]byte, 6*bs+4321)
	rand.Read(v1[:4*bs]) // blocks 4 and 5 are zeros
	v2 := bytes.Clone(v1)
	rand.Read(v2[2*bs : 2*bs+512])
	dir, blocks := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(dir, "v1.img"), v1)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(v2)
	zw.Close()
	writeFile(t, filepath.Join(dir, "v2.img.gz"), gz.Bytes())

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	logFile, err := os.Create(filepath.Join(t.TempDir(), "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	log := func() string { b, _ := os.ReadFile(logFile.Name()); return string(b) }
	cmd := exec.Command(btyBin, "serve", "--images", dir, "--listen", addr, "--blocks", blocks)
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	base := "http://" + addr
	get := func(url string) (*http.Response, []byte) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v\n%s", url, err, log())
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	// Until bty serve listens and has indexed both images (bounded: a loaded
	// machine decodes slowly, so the bound is generous).
	var rows map[string]catalog.Entry
	for i := 0; i < 1200 && len(rows) < 2; i++ {
		time.Sleep(100 * time.Millisecond)
		resp, err := http.Get(base + "/catalog.toml")
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		c, err := catalog.Parse(base+"/catalog.toml", body)
		if err != nil {
			t.Fatalf("the served catalog does not parse: %v\n%s", err, body)
		}
		rows = map[string]catalog.Entry{}
		for _, e := range c.Images {
			if e.BlockIndex != "" {
				rows[e.Name] = e
			}
		}
	}
	if len(rows) < 2 {
		t.Fatalf("bty serve did not list both images with a block index within 2 minutes:\n%s", log())
	}
	for name, img := range map[string][]byte{"v1.img": v1, "v2.img.gz": v2} {
		e := rows[name]
		resp, enc := get(e.BlockIndex)
		if resp.StatusCode != 200 || "sha256:"+sha256Hex(enc) != e.BlockIndexDigest {
			t.Fatalf("GET %s = %d, sha256:%s; want the catalog's block_index_digest %s", e.BlockIndex, resp.StatusCode, sha256Hex(enc), e.BlockIndexDigest)
		}
		ix, err := blockindex.Decode(bytes.NewReader(enc))
		if err != nil {
			t.Fatal(err)
		}
		if ix.Digest != "sha256:"+sha256Hex(img) || ix.Length != int64(len(img)) {
			t.Errorf("%s: index of %d bytes %s, want the decoded image's %d bytes sha256:%s", name, ix.Length, ix.Digest, len(img), sha256Hex(img))
		}
		dirURL := e.BlockIndex[:strings.LastIndex(e.BlockIndex, "/")+1]
		for i, sum := range ix.Blocks {
			resp, packed := get(dirURL + "sha256/" + blockindex.Hex(sum))
			if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
				t.Fatalf("GET block %d of %s = %d %v, want 200, immutable", i, name, resp.StatusCode, resp.Header)
			}
			b, err := blockindex.Unpack(packed, sum, ix.Len(i))
			if err != nil {
				t.Fatalf("block %d of %s: %v", i, name, err)
			}
			if !bytes.Equal(b, img[int64(i)*bs:int64(i)*bs+int64(len(b))]) {
				t.Fatalf("block %d of %s is not the image's", i, name)
			}
		}
	}
	// v1: 4 random blocks, 2 zero ones stored once, a short tail; v2 adds
	// the one block it changed.
	files, _ := filepath.Glob(filepath.Join(blocks, "sha256", "*"))
	if len(files) != 4+1+1+1 {
		t.Errorf("the block store holds %d blocks, want 7 (v1's distinct blocks and v2's changed one)\n%s", len(files), log())
	}
	if leftovers, _ := filepath.Glob(filepath.Join(blocks, ".*")); len(leftovers) != 0 {
		t.Errorf("bty serve left %v in the block store (the decoded image is removed)", leftovers)
	}
	if l := log(); !strings.Contains(l, "bty serve: indexed v2.img.gz") {
		t.Errorf("bty serve's log does not say it indexed v2.img.gz:\n%s", l)
	}
}
