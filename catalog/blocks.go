package catalog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"bty/blockindex"
	"bty/category"
)

// Blocks is an image's block index, fetched and checked against its catalog
// entry, and the store its blocks come from: what a delta reflash flashes
// from when the target lacks only some blocks (flash.Blocks).
//
//	block_index (URL or path) -> sha256 == block_index_digest -> Decode
//	                          -> Digest == the entry's sha256 (a raw image)
//	Fetch(sum) -> GET <index URL>/../sha256/<hex> -> Unpack (size, sha256)
type Blocks struct {
	ix     *blockindex.Index
	base   string // the index's URL or path; a block's is sha256/<hex> beside it
	client *http.Client
}

// blockAttempts is how many times a block is fetched before a cut
// connection or a server error fails the flash.
const blockAttempts = 4

// OpenBlocks fetches img's block index and checks it: its bytes against the
// entry's block_index_digest, and, when the entry's sha256 is that of the
// decoded image (a raw image), the index's digest against it. A mismatch is
// category.ErrIntegrity; an index that cannot be fetched, category.ErrSource.
func (r *Resolver) OpenBlocks(ctx context.Context, img Resolved) (*Blocks, error) {
	want, ok := strings.CutPrefix(img.BlockIndexDigest, "sha256:")
	if img.BlockIndex == "" || !ok {
		return nil, fmt.Errorf("%w: %s has no block index with a sha256 digest", category.ErrUsage, img.Name)
	}
	b := &Blocks{base: img.BlockIndex, client: r.client()}
	data, err := b.get(ctx, img.BlockIndex, 1<<10+blockindex.MaxBlocks*32, "block index")
	if err != nil {
		return nil, err
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != strings.ToLower(want) {
		return nil, fmt.Errorf("%w: block index %s: sha256 %x, the catalog says %s: the index is not the one the catalog names (a stale or tampered copy)",
			category.ErrIntegrity, img.BlockIndex, sum, want)
	}
	ix, err := blockindex.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, category.Wrap(category.ErrIntegrity, fmt.Errorf("%s: %w", img.BlockIndex, err))
	}
	if img.SHA256 != "" && (img.Format == "" || img.Format == "img" || img.Format == "raw") && ix.Digest != "sha256:"+img.SHA256 {
		return nil, fmt.Errorf("%w: block index %s is of the image %s, the catalog's %s is %s: the index belongs to another image",
			category.ErrIntegrity, img.BlockIndex, ix.Digest, img.Name, img.SHA256)
	}
	b.ix = ix
	return b, nil
}

// Index returns the checked index.
func (b *Blocks) Index() *blockindex.Index { return b.ix }

// Fetch returns the block whose sha256 is sum, size bytes, checked, and the
// bytes transferred for it. A cut connection or a server error is retried;
// a block that does not match its digest is category.ErrIntegrity at once.
func (b *Blocks) Fetch(ctx context.Context, sum [32]byte, size int64) ([]byte, int64, error) {
	loc := blockLocation(b.base, blockindex.Hex(sum))
	var moved int64
	for attempt := 1; ; attempt++ {
		packed, err := b.get(ctx, loc, blockindex.PackedLimit(size), "block")
		moved += int64(len(packed))
		if err == nil {
			blk, err := blockindex.Unpack(packed, sum, size)
			if err != nil {
				return nil, moved, category.Wrap(category.ErrIntegrity, fmt.Errorf("%s: %w", loc, err))
			}
			return blk, moved, nil
		}
		if p, ok := err.(interface{ Permanent() bool }); attempt == blockAttempts || ctx.Err() != nil || ok && p.Permanent() {
			return nil, moved, err
		}
		select {
		case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
		case <-ctx.Done():
			return nil, moved, ctx.Err()
		}
	}
}

// blockLocation is the block hx beside the index at base: "sha256/<hex>"
// resolved against a URL, or in the index's directory.
func blockLocation(base, hx string) string {
	if u, err := url.Parse(base); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		return u.ResolveReference(&url.URL{Path: "sha256/" + hx}).String()
	}
	return filepath.Join(filepath.Dir(base), "sha256", hx)
}

// get reads at most limit bytes of what (a block or the index) from a URL
// or a path; failures are category.ErrSource, permanent where a retry
// cannot help.
func (b *Blocks) get(ctx context.Context, loc string, limit int64, what string) ([]byte, error) {
	var body io.Reader
	if u, err := url.Parse(loc); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc, nil)
		if err != nil {
			return nil, &sourceError{err: fmt.Errorf("%s %s: %w", what, loc, err), permanent: true}
		}
		resp, err := b.client.Do(req)
		if err != nil {
			return nil, &sourceError{err: netErr(what+" "+loc, err)}
		}
		defer resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
			return nil, &sourceError{err: fmt.Errorf("%s %s: %s: %w: the server no longer has it (flash without --delta)", what, loc, resp.Status, ErrNotFound), permanent: true}
		case resp.StatusCode != http.StatusOK:
			return nil, &sourceError{err: fmt.Errorf("%s %s: %s", what, loc, resp.Status), permanent: resp.StatusCode < 500}
		}
		body = resp.Body
	} else {
		f, err := os.Open(loc)
		if err != nil {
			return nil, &sourceError{err: fmt.Errorf("%s %w", what, fileErr(loc, err)), permanent: true}
		}
		defer f.Close()
		body = f
	}
	data, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, &sourceError{err: netErr(what+" "+loc, err)}
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: %s %s is larger than %d bytes: not a bty %s", category.ErrIntegrity, what, loc, limit, what)
	}
	return data, nil
}
