package catalog

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"bty/blockindex"
	"bty/format"
)

// done returns the result of a computation that was known (sum) or that
// has finished without error, else "".
func (f *localFile) done(sum string, call *hashCall) string {
	if call == nil {
		return sum
	}
	select {
	case <-call.finished:
		if call.err == nil {
			return call.sum
		}
	default:
	}
	return ""
}

// indexFile computes the block index of version k of the image at path,
// stores its blocks and the index in the block store, and returns the
// sha256 of the encoded index. Like hashFile, it checks that the file is
// still version k afterwards.
func (s *Server) indexFile(path string, k hashKey) (string, error) {
	const mib = 1 << 20
	start := time.Now()
	fail := func(err error) (string, error) {
		s.logf("bty serve: cannot index %s: %v; it is listed without a block index", k.name, err)
		return "", err
	}
	f, err := openNoFollow(path)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	head := make([]byte, format.MagicLen)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return fail(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fail(err)
	}
	var img io.Reader = bufio.NewReaderSize(f, mib)
	if m := format.Magic(head[:n]); m != "" {
		if s.opt.Decode == nil {
			return fail(fmt.Errorf("a %s image is indexed only by bty serve, which decodes it", m))
		}
		rc, err := s.opt.Decode(context.Background(), path)
		if err != nil {
			return fail(err)
		}
		defer rc.Close()
		img = rc
	}
	s.logf("bty serve: indexing %s for delta reflash", k.name)
	ix, st, err := s.opt.Blocks.Add(img, blockindex.DefaultBlockSize)
	if err != nil {
		return fail(err)
	}
	fi, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	if keyOf(k.name, fi) != k {
		return fail(fmt.Errorf("%s changed while it was indexed (it is indexed again when next listed)", path))
	}
	d := time.Since(start)
	s.logf("bty serve: indexed %s in %s: %d blocks of %d KiB, %d new (%.1f MiB, %.1f MiB compressed)", k.name,
		d.Round(min(max(d/1000, time.Microsecond), 100*time.Millisecond)), st.Blocks, ix.BlockSize>>10, st.New,
		float64(st.NewBytes)/mib, float64(st.PackedBytes)/mib)
	return st.IndexDigest, nil
}

// serveBlock answers GET /blocks/sha256/<hex> (a zstd-compressed block of
// the store) and GET /blocks/<hex>.index (an encoded block index). Both are
// named by their digest, so they never change: a client or proxy may cache
// them for ever.
func (s *Server) serveBlock(w http.ResponseWriter, r *http.Request, name string) {
	var path, ctype string
	hx, isBlock := strings.CutPrefix(name, "sha256/")
	if !isBlock {
		hx, _ = strings.CutSuffix(name, ".index")
	}
	sum, ok := blockindex.ParseHex(hx)
	switch {
	case ok && isBlock:
		path, ctype = s.opt.Blocks.BlockPath(sum), "application/zstd"
	case ok && name == hx+".index":
		path, ctype = s.opt.Blocks.IndexPath(sum), "application/octet-stream"
	default:
		http.Error(w, "not a block (sha256/<64 lower-case hex digits>) or an index (<64 hex digits>.index)", http.StatusNotFound)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("ETag", `"sha256:`+hx+`"`)
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	w.Header().Set("Content-Type", ctype)
	http.ServeContent(w, r, "", fi.ModTime(), f)
}
