package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"bty/category"
	"bty/format"
)

// Source is what the flash engine reads (flash.Source, declared there).
type Source interface {
	Name() string
	Open(ctx context.Context, off int64) (io.ReadCloser, int64, error)
}

// Resolved is an IMG argument turned into something to flash.
type Resolved struct {
	Name       string // display name (catalog entry name or file name)
	Source     Source
	SHA256     string       // expected digest of the source bytes, "" when unknown
	SHA256From DigestSource // where SHA256 comes from, "" when it is unknown
	Format     string       // format hint from the catalog, "" when none
	Size       int64        // expected size of the source bytes, 0 when unknown
	Ref        string       // canonical ref of the image, "" for a local path given directly
	Path       string       // the local file Source reads, "" when it is not one
	// BlockIndex and BlockIndexDigest are the catalog entry's block index for
	// delta reflash (its URL or local path, "sha256:<hex>" of its bytes); ""
	// when the entry has none.
	BlockIndex, BlockIndexDigest string
}

// DigestSource says where an expected digest came from; the values are the
// "sha256_source" of bty's --json result.
type DigestSource string

const (
	DigestSidecar  DigestSource = "sidecar"  // IMG.sha256 beside a local image
	DigestCatalog  DigestSource = "catalog"  // the catalog entry's sha256
	DigestRegistry DigestSource = "registry" // the oras:// layer's digest
	DigestFlag     DigestSource = "flag"     // --sha256 on the command line
	DigestPlan     DigestSource = "plan"     // a server's flash plan (disk_image_sha)
	// DigestBlockIndex: the decoded image's digest in a block index whose
	// own digest the catalog or plan names (a delta from a block store).
	DigestBlockIndex DigestSource = "block_index"
)

// Matches says that a digest matched, and which: "matches the catalog's sha256".
func (d DigestSource) Matches() string {
	switch d {
	case DigestSidecar:
		return "matches the .sha256 sidecar"
	case DigestCatalog:
		return "matches the catalog's sha256"
	case DigestRegistry:
		return "matches the registry's layer digest"
	case DigestFlag:
		return "matches --sha256"
	case DigestPlan:
		return "matches the plan's disk_image_sha"
	case DigestBlockIndex:
		return "the decoded image's, every block checked against the block index the catalog names"
	}
	return "matches the expected digest"
}

// from is d when a digest is known, else "".
func (d DigestSource) from(sha256 string) DigestSource {
	if sha256 == "" {
		return ""
	}
	return d
}

// Resolver finds images by name in the image root and catalogs, and turns
// names, paths and URLs into sources. The zero value resolves paths and URLs
// only. Catalogs are loaded once, on first use.
type Resolver struct {
	// Catalogs are catalog sources (path, http(s):// or oras://), in order of
	// precedence after the image root.
	Catalogs []string
	// ImageRoot is the image root directory; "" means none. A root that does
	// not exist holds no images.
	ImageRoot string
	// Client does HTTP requests for catalogs and http(s) images; nil means
	// NewHTTPClient().
	Client *http.Client
	// Registry configures oras:// access; its nil Client means Client.
	Registry Registry
	// Timeout bounds loading one catalog; zero means 20 s.
	Timeout time.Duration
	// Stdin is what IMG "-" reads; nil means os.Stdin.
	Stdin io.Reader

	mu      sync.Mutex
	entries []Entry // merged rows, once loaded
	loaded  bool
}

// Resolve turns IMG (a local path or an http(s) or oras:// URL) into a
// Resolved image. A local file's sidecar <file>.sha256 gives the expected digest.
func Resolve(ctx context.Context, spec string) (Resolved, error) {
	return (&Resolver{}).Resolve(ctx, spec)
}

func (r *Resolver) client() *http.Client {
	if r.Client == nil {
		return defaultClient()
	}
	return r.Client
}

// defaultClient is shared so that connections are reused across requests.
var defaultClient = sync.OnceValue(NewHTTPClient)

func (r *Resolver) registry() *Registry {
	g := r.Registry
	if g.Client == nil {
		g.Client = r.client()
	}
	return &g
}

// In returns a resolver that reaches catalogs, registries and URLs as r does
// (the same HTTP client, registry settings, timeout and standard input) but
// looks names up in the image root root and in catalogs. The wizard uses it
// for the catalogs chosen on its source screen.
func (r *Resolver) In(root string, catalogs []string) *Resolver {
	return &Resolver{Catalogs: catalogs, ImageRoot: root, Client: r.Client, Registry: r.Registry, Timeout: r.Timeout, Stdin: r.Stdin}
}

// List is the images of one place: the image root, or one catalog.
type List struct {
	// Index is the place's order: 0 for the image root, 1+i for Catalogs[i].
	Index int
	// Source is the image root's directory, or the catalog's source.
	Source string
	Rows   []Entry
	// Err is why the place could not be read; Rows is then empty. An image
	// root that does not exist, or none at all, holds no images and is no
	// error.
	Err error
}

// Lists reads the image root and every catalog at once, and sends each List
// on the channel as soon as it is read: a slow catalog does not hold back the
// others. The channel holds them all (nobody has to receive for the reads to
// end) and is closed after the last. Cancelling ctx gives up on the catalogs
// still loading: their lists come with the cancellation as Err.
func (r *Resolver) Lists(ctx context.Context) <-chan List {
	ch := make(chan List, 1+len(r.Catalogs))
	var wg sync.WaitGroup
	wg.Go(func() {
		l := List{Source: r.ImageRoot}
		if r.ImageRoot != "" {
			rows, err := ScanRoot(r.ImageRoot)
			if err != nil && !isNotExist(err) {
				l.Err = &sourceError{err: err, permanent: true}
			}
			l.Rows = rows
		}
		ch <- l
	})
	for i, src := range r.Catalogs {
		wg.Go(func() {
			l := List{Index: 1 + i, Source: src}
			if c, err := r.Load(ctx, src); err != nil {
				l.Err = err
			} else {
				l.Rows = c.Images
			}
			ch <- l
		})
	}
	go func() {
		wg.Wait()
		close(ch)
	}()
	return ch
}

// Images returns the merged rows: the image root first, then each catalog in
// order, one row per ref. A place that cannot be read fails the call, with
// the first such error in that order.
func (r *Resolver) Images(ctx context.Context) ([]Entry, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.loaded {
		return r.entries, nil
	}
	lists := make([]List, 1+len(r.Catalogs))
	for l := range r.Lists(ctx) {
		lists[l.Index] = l
	}
	rows := make([][]Entry, len(lists))
	for i, l := range lists {
		if l.Err != nil {
			return nil, l.Err
		}
		rows[i] = l.Rows
	}
	r.entries, r.loaded = Merge(rows...), true
	return r.entries, nil
}

// Resolve turns IMG into a Resolved image. "-" is standard input. A name (no
// "/" and no "://") is looked up in the image root, then the catalogs in
// order; otherwise, or when no row has that name, IMG is an oras://
// reference, an http(s):// URL, or a local path.
func (r *Resolver) Resolve(ctx context.Context, spec string) (Resolved, error) {
	if spec == "-" {
		return Resolved{Name: StdinName, Source: &StdinSource{R: r.Stdin}}, nil
	}
	isName := !strings.Contains(spec, "/") && !strings.Contains(spec, "://")
	if isName && (r.ImageRoot != "" || len(r.Catalogs) > 0) {
		entries, err := r.Images(ctx)
		if err != nil {
			return Resolved{}, err
		}
		if e, ok := Find(entries, spec); ok {
			return r.Open(ctx, e)
		}
		if _, err := os.Stat(spec); err != nil {
			return Resolved{}, &sourceError{err: fmt.Errorf("image %q: %w in %s, and no such file here: run bty images to see the names", spec, ErrNotFound, r.where()), permanent: true}
		}
	}
	switch scheme, _, _ := strings.Cut(spec, "://"); {
	case strings.EqualFold(scheme, "oras"):
		return r.resolveOras(ctx, spec, spec, "")
	case strings.EqualFold(scheme, "http") || strings.EqualFold(scheme, "https"):
		ref, err := Ref(spec)
		if err != nil {
			return Resolved{}, &sourceError{err: err, permanent: true}
		}
		return Resolved{Name: spec, Source: &HTTPSource{URL: spec, Client: r.client()}, Ref: ref}, nil
	case strings.Contains(spec, "://"):
		return Resolved{}, fmt.Errorf("%s: unsupported scheme, %w: use a local path, an http(s):// URL or an oras:// reference", spec, ErrNotImage)
	}
	return resolveFile(spec, spec)
}

// where names the places a name was looked up, for messages.
func (r *Resolver) where() string {
	var places []string
	if r.ImageRoot != "" {
		places = append(places, "the image root "+r.ImageRoot)
	}
	if len(r.Catalogs) > 0 {
		places = append(places, "the catalogs "+strings.Join(r.Catalogs, ", "))
	}
	return strings.Join(places, " or ")
}

// Open turns a row of Images into a Resolved image. A pending row (its
// server is still computing the sha256) is refused for now: flashed, it would
// not be verified.
func (r *Resolver) Open(ctx context.Context, e Entry) (Resolved, error) {
	if e.Pending {
		return Resolved{}, &sourceError{err: fmt.Errorf("image %q: %w", e.Name, ErrPending)}
	}
	switch scheme, _, _ := strings.Cut(e.Src, "://"); {
	case strings.EqualFold(scheme, "oras"):
		res, err := r.resolveOras(ctx, e.Src, e.Name, e.SHA256)
		res.BlockIndex, res.BlockIndexDigest = e.BlockIndex, e.BlockIndexDigest
		return res, err
	case strings.EqualFold(scheme, "http") || strings.EqualFold(scheme, "https"):
		return Resolved{Name: e.Name, Source: &HTTPSource{URL: e.Src, Client: r.client()}, SHA256: e.SHA256, SHA256From: DigestCatalog.from(e.SHA256), Format: e.Format, Size: e.Size, Ref: e.Ref,
			BlockIndex: e.BlockIndex, BlockIndexDigest: e.BlockIndexDigest}, nil
	case filepath.IsAbs(e.Src):
		res, err := resolveFile(e.Src, e.Name)
		res.Format, res.Ref = e.Format, e.Ref
		return res, err
	}
	return Resolved{}, fmt.Errorf("image %q: src %q is not an http(s):// or oras:// URL", e.Name, e.Src)
}

// resolveOras resolves the manifest now, so the layer's digest and size are
// known before the flash starts; the layer digest is always the expected one.
func (r *Resolver) resolveOras(ctx context.Context, src, name, catalogSHA string) (Resolved, error) {
	s, err := r.registry().ResolveOras(ctx, src)
	if err != nil {
		return Resolved{}, err
	}
	if catalogSHA != "" && catalogSHA != s.Digest() {
		return Resolved{}, fmt.Errorf("image %q: %w: the catalog says sha256 %s but the registry's layer is sha256:%s: fix the catalog or the tag", name, category.ErrIntegrity, catalogSHA, s.Digest())
	}
	if name == src && s.Title() != "" {
		name = s.Title()
	}
	// Both digests are the same; the catalog's is named, as it is the one
	// someone chose to pin.
	from := DigestRegistry
	if catalogSHA != "" {
		from = DigestCatalog
	}
	return Resolved{Name: name, Source: s, SHA256: s.Digest(), SHA256From: from, Format: format.FromName(s.Title()).Catalog(), Size: s.Size(), Ref: hashString(s.Ref())}, nil
}

// resolveFile resolves a local image file; name is its display name.
func resolveFile(path, name string) (Resolved, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Resolved{}, &sourceError{err: fileErr(path, err), permanent: true}
	}
	if fi.IsDir() {
		return Resolved{}, fmt.Errorf("%s is a directory, %w: name an image file in it", path, ErrNotImage)
	}
	sum, err := readSidecar(path + ".sha256")
	if err != nil {
		return Resolved{}, err
	}
	return Resolved{Name: name, Source: NewFileSource(path), Path: path, SHA256: sum, SHA256From: DigestSidecar.from(sum)}, nil
}

// readSidecar reads a sha256 sidecar: its first token must be 64 hex digits. A
// missing sidecar is not an error.
func readSidecar(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	first, _, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	sum, ok := NormalizeSHA256(first)
	if !ok {
		return "", fmt.Errorf("%s: %w: the first word must be a sha256 of 64 hex digits", path, ErrInvalidSidecar)
	}
	return sum, nil
}

// ErrInvalidSidecar: a .sha256 file that holds no digest; category.ErrUsage.
var ErrInvalidSidecar = category.New(category.ErrUsage, "invalid sha256 sidecar")

// NormalizeSHA256 trims and lower-cases a sha256 written as hex; ok is false
// unless the result is 64 hex digits. Catalogs, sidecars, --sha256 and plans
// all take digests this way.
func NormalizeSHA256(s string) (string, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) != 64 {
		return s, false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return s, false
		}
	}
	return s, true
}
