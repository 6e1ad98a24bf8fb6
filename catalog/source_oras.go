package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"bty/category"
)

// Registry says how bty talks to OCI registries for oras:// sources.
type Registry struct {
	// Client does the HTTP requests; nil means NewHTTPClient().
	Client *http.Client
	// PlainHTTP allows plain HTTP to any registry. Loopback registries
	// (localhost, 127.0.0.0/8, ::1) always use plain HTTP; the zero value means
	// HTTPS everywhere else.
	PlainHTTP bool
	// DockerConfig is the Docker config file holding registry credentials; ""
	// means $DOCKER_CONFIG/config.json, else ~/.docker/config.json. Without a
	// file, or without credentials for a registry, access is anonymous (bearer
	// tokens for public registries).
	DockerConfig string
	// Stall aborts a blob download that delivers nothing for this long, so the
	// flash engine can resume; zero means 30 s.
	Stall time.Duration
}

// maxManifest bounds a manifest read into memory.
const maxManifest = 4 << 20

// Docker's media types, which oras-go's ocispec does not name.
const (
	mediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// OrasSource is the disk-image layer of an OCI artifact (docs/catalog.md, oras:// sources). It
// is read by digest, so a tag moved between two attempts cannot splice two
// versions, and it resumes with Range when the registry supports it.
type OrasSource struct {
	ref   orasRef
	layer ocispec.Descriptor
	repo  *remote.Repository
	stall time.Duration
}

// Name is the layer's title (its file name, a format hint), else the reference.
func (s *OrasSource) Name() string {
	if t := s.Title(); t != "" {
		return t
	}
	return s.ref.String()
}

// Ref is the canonical oras:// reference of the artifact.
func (s *OrasSource) Ref() string { return s.ref.String() }

// Title is the layer's org.opencontainers.image.title annotation, "" when none.
func (s *OrasSource) Title() string { return s.layer.Annotations[ocispec.AnnotationTitle] }

// Digest is the layer's sha256 in lower-case hex: the expected digest of the
// bytes Open delivers.
func (s *OrasSource) Digest() string { return s.layer.Digest.Encoded() }

// Size is the layer's size in bytes.
func (s *OrasSource) Size() int64 { return s.layer.Size }

// Open fetches the layer from off on. The size is the whole layer's.
func (s *OrasSource) Open(ctx context.Context, off int64) (io.ReadCloser, int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	rc, err := s.repo.Blobs().Fetch(ctx, s.layer)
	if err != nil {
		defer cancel()
		if lerr := s.lengthErr(ctx); lerr != nil {
			return nil, -1, lerr
		}
		return nil, -1, s.err("fetch layer "+s.layer.Digest.String(), err)
	}
	if off > 0 {
		if seeker, ok := rc.(io.Seeker); ok {
			_, err = seeker.Seek(off, io.SeekStart)
		} else {
			// The registry does not announce Range support: skip what we have.
			_, err = io.CopyN(io.Discard, rc, off)
		}
		if err != nil {
			rc.Close()
			cancel()
			return nil, -1, s.err(fmt.Sprintf("resume layer %s at byte %d", s.layer.Digest, off), err)
		}
	}
	return newStallReader(rc, cancel, s.stall), s.layer.Size, nil
}

// lengthErr asks the registry for the layer's length after a failed fetch
// (oras-go refuses a Content-Length other than the descriptor's, in words
// only): a layer stored with another length than its descriptor names holds
// other bytes than it names, an integrity failure like a digest mismatch, and
// no retry can mend it. Nil when the lengths agree or the registry does not say.
func (s *OrasSource) lengthErr(ctx context.Context) error {
	d, err := s.repo.Blobs().Resolve(ctx, s.layer.Digest.String())
	if err != nil || d.Size == s.layer.Size {
		return nil
	}
	return &sourceError{err: fmt.Errorf("%s: layer %s is %d bytes in the registry but %d in its manifest: %w: the registry holds other bytes than it names", s.ref, s.layer.Digest, d.Size, s.layer.Size, category.ErrIntegrity), permanent: true}
}

func (s *OrasSource) err(op string, err error) error {
	return registryErr(s.ref.String()+": "+op, err)
}

// registryErr classifies an oras-go error: not found and access denied are
// permanent, anything else (network, 5xx) may be retried.
func registryErr(subject string, err error) error {
	var resp *errcode.ErrorResponse
	switch {
	case errors.Is(err, context.Canceled):
		return err
	case errors.Is(err, content.ErrMismatchedDigest) || errors.Is(err, content.ErrTrailingData):
		return &sourceError{err: fmt.Errorf("%s: %w (%w): the registry delivered other bytes than its digest names", subject, category.ErrIntegrity, err), permanent: true}
	case errors.Is(err, errdef.ErrNotFound):
		return &sourceError{err: fmt.Errorf("%s: %w: check the repository and tag", subject, ErrNotFound), permanent: true}
	case errors.As(err, &resp) && resp.StatusCode == http.StatusNotFound:
		return &sourceError{err: fmt.Errorf("%s: %w (%w): check the repository and tag", subject, ErrNotFound, err), permanent: true}
	case errors.Is(err, auth.ErrBasicCredentialNotFound),
		errors.As(err, &resp) && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden):
		return &sourceError{err: fmt.Errorf("%s: access denied (%w): log in with docker login, or check the reference", subject, err), permanent: true}
	case errors.As(err, &resp) && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests:
		return &sourceError{err: fmt.Errorf("%s: %w", subject, err), permanent: true}
	}
	return &sourceError{err: netErr(subject, err)}
}

// isLoopback reports whether a registry host[:port] is on this machine.
func isLoopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// repository returns a client for the repository of r.
func (g *Registry) repository(r orasRef) (*remote.Repository, error) {
	repo, err := remote.NewRepository(r.Reference())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r, err)
	}
	repo.PlainHTTP = g.PlainHTTP || isLoopback(r.Host)
	hc := g.Client
	if hc == nil {
		hc = NewHTTPClient()
	}
	client := &auth.Client{Client: hc, Cache: auth.NewCache(), Header: http.Header{"User-Agent": {"bty"}}}
	var store credentials.Store
	if g.DockerConfig != "" {
		store, err = credentials.NewStore(g.DockerConfig, credentials.StoreOptions{})
	} else {
		store, err = credentials.NewStoreFromDocker(credentials.StoreOptions{})
	}
	if err != nil {
		// An unreadable Docker config must not block public registries.
		store = nil
	}
	if store != nil {
		client.Credential = credentials.Credential(store)
	}
	repo.Client = client
	return repo, nil
}

// manifest fetches and parses the image manifest r names. An index is refused
// with the digests of its platforms.
func (g *Registry) manifest(ctx context.Context, r orasRef) (*remote.Repository, ocispec.Manifest, error) {
	repo, err := g.repository(r)
	if err != nil {
		return nil, ocispec.Manifest{}, &sourceError{err: err, permanent: true}
	}
	reference := r.Tag
	if r.Digest != "" {
		reference = r.Digest
	}
	desc, rc, err := repo.FetchReference(ctx, reference)
	if err != nil {
		return nil, ocispec.Manifest{}, registryErr(r.String(), err)
	}
	defer rc.Close()
	if desc.Size > maxManifest {
		return nil, ocispec.Manifest{}, &sourceError{err: fmt.Errorf("%s: manifest of %d bytes is larger than %d: not a disk image artifact", r, desc.Size, maxManifest), permanent: true}
	}
	data, err := content.ReadAll(rc, desc)
	if err != nil {
		return nil, ocispec.Manifest{}, registryErr(r.String()+": read manifest", err)
	}
	switch desc.MediaType {
	case ocispec.MediaTypeImageManifest, mediaTypeDockerManifest:
	case ocispec.MediaTypeImageIndex, mediaTypeDockerList:
		return nil, ocispec.Manifest{}, indexError(r, data)
	default:
		return nil, ocispec.Manifest{}, &sourceError{err: fmt.Errorf("%s: manifest type %s is not supported: push the image as an OCI image manifest", r, desc.MediaType), permanent: true}
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, ocispec.Manifest{}, &sourceError{err: fmt.Errorf("%s: manifest: %w", r, err), permanent: true}
	}
	return repo, m, nil
}

// indexError asks for a platform digest, listing the choices.
func indexError(r orasRef, data []byte) error {
	var idx ocispec.Index
	_ = json.Unmarshal(data, &idx)
	var choices []string
	for _, m := range idx.Manifests {
		c := orasRef{Host: r.Host, Repository: r.Repository, Digest: m.Digest.String()}.String()
		if p := m.Platform; p != nil {
			c += " (" + p.OS + "/" + p.Architecture
			if p.Variant != "" {
				c += "/" + p.Variant
			}
			c += ")"
		}
		choices = append(choices, c)
	}
	var list string
	if len(choices) > 0 {
		list = ": " + strings.Join(choices, ", ")
	}
	return &sourceError{err: fmt.Errorf("%s is %w: pick a platform digest%s", r, ErrIndex, list), permanent: true}
}

// ResolveOras resolves an oras:// reference to its disk-image layer.
func (g *Registry) ResolveOras(ctx context.Context, src string) (*OrasSource, error) {
	r, err := parseOras(src)
	if err != nil {
		return nil, &sourceError{err: err, permanent: true}
	}
	repo, m, err := g.manifest(ctx, r)
	if err != nil {
		return nil, err
	}
	layer, ok := chooseLayer(m.Layers)
	if !ok {
		return nil, &sourceError{err: fmt.Errorf("%s: %w: no layer looks like a disk image (%s): push the image as a layer with a title", r, ErrNotFound, describeLayers(m.Layers)), permanent: true}
	}
	if layer.Digest.Algorithm() != "sha256" || layer.Digest.Validate() != nil {
		return nil, &sourceError{err: fmt.Errorf("%s: layer digest %s is not a valid sha256: bty verifies every layer by sha256", r, layer.Digest), permanent: true}
	}
	stall := g.Stall
	if stall <= 0 {
		stall = 30 * time.Second
	}
	return &OrasSource{ref: r, layer: layer, repo: repo, stall: stall}, nil
}

// fetchCatalog reads a catalog published as an OCI artifact: the layer whose
// title ends in .toml (or whose media type says toml), else the layer an image
// would be taken from. It refuses layers larger than max.
func (g *Registry) fetchCatalog(ctx context.Context, src string, max int64) ([]byte, error) {
	r, err := parseOras(src)
	if err != nil {
		return nil, &sourceError{err: err, permanent: true}
	}
	repo, m, err := g.manifest(ctx, r)
	if err != nil {
		return nil, err
	}
	var layer ocispec.Descriptor
	found := false
	for _, l := range m.Layers {
		if strings.HasSuffix(strings.ToLower(l.Annotations[ocispec.AnnotationTitle]), ".toml") || strings.Contains(l.MediaType, "toml") {
			layer, found = l, true
			break
		}
	}
	if !found {
		layer, found = chooseLayer(m.Layers)
	}
	if !found {
		return nil, &sourceError{err: fmt.Errorf("%s: %w: the artifact has no catalog layer (%s)", r, ErrNotFound, describeLayers(m.Layers)), permanent: true}
	}
	if layer.Size > max {
		return nil, &sourceError{err: fmt.Errorf("%s: catalog layer is %d bytes, more than the %d MiB a catalog may have", r, layer.Size, max>>20), permanent: true}
	}
	rc, err := repo.Blobs().Fetch(ctx, layer)
	if err != nil {
		return nil, registryErr(r.String()+": fetch catalog layer", err)
	}
	defer rc.Close()
	data, err := content.ReadAll(rc, layer)
	if err != nil {
		return nil, registryErr(r.String()+": read catalog layer", err)
	}
	return data, nil
}

// notImageMediaTypes mark layers that are clearly not disk images: Helm charts,
// Cosign/Sigstore signatures, Notary signatures, in-toto/DSSE attestations,
// SPDX/CycloneDX SBOMs, the empty descriptor.
var notImageMediaTypes = []string{"helm", "cosign", "sigstore", "notary", "in-toto", "intoto", "dsse", "spdx", "cyclonedx", "vnd.oci.empty.v1"}

// chooseLayer picks the disk image among an artifact's layers
// (docs/catalog.md, oras:// sources): drop what is clearly not one, and layers titled like sidecars,
// then take the largest. The first of equal sizes wins.
func chooseLayer(layers []ocispec.Descriptor) (ocispec.Descriptor, bool) {
	var best ocispec.Descriptor
	found := false
	for _, l := range layers {
		if !maybeImage(l) {
			continue
		}
		if !found || l.Size > best.Size {
			best, found = l, true
		}
	}
	return best, found
}

func maybeImage(l ocispec.Descriptor) bool {
	mt := strings.ToLower(l.MediaType)
	for _, s := range notImageMediaTypes {
		if strings.Contains(mt, s) {
			return false
		}
	}
	if l.Digest == ocispec.DescriptorEmptyJSON.Digest {
		return false
	}
	return !isSidecar(l.Annotations[ocispec.AnnotationTitle])
}

func describeLayers(layers []ocispec.Descriptor) string {
	if len(layers) == 0 {
		return "no layers"
	}
	var parts []string
	for _, l := range layers {
		s := l.MediaType
		if t := l.Annotations[ocispec.AnnotationTitle]; t != "" {
			s = t + " " + s
		}
		parts = append(parts, s)
	}
	return "layers: " + strings.Join(parts, ", ")
}
