// Package catalogtest runs a real OCI registry on loopback for tests: Debian's
// docker-registry (the CNCF distribution registry) with its storage in a
// temporary directory, and pushes artifacts to it with oras-go.
package catalogtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/registry/remote"

	"bty/internal/testproc"
)

// RegistryBin is where Debian's docker-registry package installs the registry.
const RegistryBin = "/usr/bin/docker-registry"

// Registry is a registry process serving plain HTTP on 127.0.0.1.
type Registry struct {
	Host    string // 127.0.0.1:PORT
	Storage string // the filesystem driver's root directory
}

// StartRegistry starts a registry for the test and stops it in t.Cleanup. It
// skips the test when the binary is missing.
func StartRegistry(t testing.TB) *Registry {
	t.Helper()
	if _, err := os.Stat(RegistryBin); err != nil {
		t.Skipf("%s is missing: apt-get install docker-registry (.ci/run installs it)", RegistryBin)
	}
	dir := t.TempDir()
	storage := filepath.Join(dir, "storage")
	host := freeAddr(t)
	config := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, storage, host)
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := testproc.DieWithTest(exec.Command(RegistryBin, "serve", cfg))
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", RegistryBin, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-done:
			t.Fatalf("%s exited: %s", RegistryBin, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer /v2/ within 15 s: %v\n%s", RegistryBin, err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &Registry{Host: host, Storage: storage}
}

// freeAddr picks a free loopback port (the registry cannot listen on :0).
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Layer is a blob to push as a layer.
type Layer struct {
	MediaType string
	Title     string // org.opencontainers.image.title, "" for none
	Data      []byte
}

// repo returns a plain-HTTP client for repository (e.g. "images/debian").
func (r *Registry) repo(t testing.TB, repository string) *remote.Repository {
	t.Helper()
	repo, err := remote.NewRepository(r.Host + "/" + repository)
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	return repo
}

// Push pushes an OCI image manifest with the given layers as
// repository:tag and returns the layer descriptors as pushed.
func (r *Registry) Push(t testing.TB, repository, tag string, layers ...Layer) []ocispec.Descriptor {
	t.Helper()
	ctx := context.Background()
	repo := r.repo(t, repository)
	var descs []ocispec.Descriptor
	for _, l := range layers {
		d, err := oras.PushBytes(ctx, repo, l.MediaType, l.Data)
		if err != nil {
			t.Fatalf("push layer %s: %v", l.Title, err)
		}
		if l.Title != "" {
			d.Annotations = map[string]string{ocispec.AnnotationTitle: l.Title}
		}
		descs = append(descs, d)
	}
	m, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, "application/vnd.bty.image", oras.PackManifestOptions{
		Layers:              descs,
		ManifestAnnotations: map[string]string{ocispec.AnnotationCreated: "2025-01-01T00:00:00Z"},
	})
	if err != nil {
		t.Fatalf("pack manifest: %v", err)
	}
	if err := repo.Tag(ctx, m, tag); err != nil {
		t.Fatalf("tag %s: %v", tag, err)
	}
	return descs
}

// PushIndex pushes two single-layer manifests and an image index over them
// as repository:tag, and returns the manifests' digests.
func (r *Registry) PushIndex(t testing.TB, repository, tag string) []digest.Digest {
	t.Helper()
	ctx := context.Background()
	repo := r.repo(t, repository)
	var manifests []ocispec.Descriptor
	for _, arch := range []string{"amd64", "arm64"} {
		r.Push(t, repository, "tmp-"+arch, Layer{MediaType: "application/octet-stream", Title: arch + ".img", Data: []byte(arch)})
		d, err := repo.Resolve(ctx, "tmp-"+arch)
		if err != nil {
			t.Fatal(err)
		}
		d.Platform = &ocispec.Platform{OS: "linux", Architecture: arch}
		manifests = append(manifests, d)
	}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: manifests}
	idx.SchemaVersion = 2
	b, err := json.Marshal(idx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oras.TagBytes(ctx, repo, ocispec.MediaTypeImageIndex, b, tag); err != nil {
		t.Fatalf("push index: %v", err)
	}
	return []digest.Digest{manifests[0].Digest, manifests[1].Digest}
}

// Tamper overwrites the stored bytes of a blob with as many other bytes, as a
// corrupted or malicious registry would serve them.
func (r *Registry) Tamper(t testing.TB, d digest.Digest) {
	t.Helper()
	path := r.blobPath(d)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("tamper: %v", err)
	}
	for i := range b {
		b[i] ^= 0x5a
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatalf("tamper: %v", err)
	}
}

// Resize makes the stored bytes of a blob n bytes long, cutting them or
// adding zeros, as a registry whose storage lost or gained bytes would serve
// them: other bytes than the descriptor's size and digest name.
func (r *Registry) Resize(t testing.TB, d digest.Digest, n int64) {
	t.Helper()
	if err := os.Truncate(r.blobPath(d), n); err != nil {
		t.Fatalf("resize: %v", err)
	}
}

// blobPath is where the filesystem driver stores a blob's bytes.
func (r *Registry) blobPath(d digest.Digest) string {
	return filepath.Join(r.Storage, "docker/registry/v2/blobs", d.Algorithm().String(), d.Encoded()[:2], d.Encoded(), "data")
}
