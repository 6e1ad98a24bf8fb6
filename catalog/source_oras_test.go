package catalog

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"bty/catalog/catalogtest"
	"bty/category"
	"bty/format"
)

func desc(mediaType, title string, size int64) ocispec.Descriptor {
	d := ocispec.Descriptor{MediaType: mediaType, Size: size, Digest: digest.FromString(fmt.Sprint(mediaType, title, size))}
	if title != "" {
		d.Annotations = map[string]string{ocispec.AnnotationTitle: title}
	}
	return d
}

func TestChooseLayer(t *testing.T) {
	tests := []struct {
		name   string
		layers []ocispec.Descriptor
		want   string // title of the chosen layer, "" for none
	}{
		{"one layer", []ocispec.Descriptor{desc("application/octet-stream", "a.img", 10)}, "a.img"},
		{"largest wins", []ocispec.Descriptor{desc("application/octet-stream", "small.img", 10), desc("application/octet-stream", "big.img.xz", 20)}, "big.img.xz"},
		{"first of equals", []ocispec.Descriptor{desc("application/octet-stream", "a.img", 10), desc("application/octet-stream", "b.img", 10)}, "a.img"},
		{
			name: "signatures, sboms and sidecars dropped however large",
			layers: []ocispec.Descriptor{
				desc("application/vnd.dev.cosign.simplesigning.v1+json", "sig", 900),
				desc("application/vnd.dev.sigstore.bundle.v0.3+json", "bundle", 900),
				desc("application/vnd.in-toto+json", "att", 900),
				desc("application/vnd.dsse.envelope.v1+json", "dsse", 900),
				desc("application/spdx+json", "sbom", 900),
				desc("application/vnd.cyclonedx+json", "cdx", 900),
				desc("application/vnd.cncf.helm.chart.content.v1.tar+gzip", "chart", 900),
				desc("application/vnd.cncf.notary.signature", "notary", 900),
				desc("application/octet-stream", "disk.img.sha256", 900),
				desc("application/octet-stream", "disk.img.SIG", 900),
				desc("text/plain", "disk.img.asc", 900),
				desc("application/json", "meta.json", 900),
				desc("application/octet-stream", "disk.img", 100),
			},
			want: "disk.img",
		},
		{"empty descriptor dropped", []ocispec.Descriptor{ocispec.DescriptorEmptyJSON}, ""},
		{"untitled layer is a candidate", []ocispec.Descriptor{desc("application/vnd.oci.image.layer.v1.tar", "", 5)}, ""},
		{"nothing", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := chooseLayer(tt.layers)
			title := got.Annotations[ocispec.AnnotationTitle]
			if tt.name == "untitled layer is a candidate" {
				if !ok {
					t.Errorf("chooseLayer() = none, want the untitled layer")
				}
				return
			}
			if title != tt.want || ok != (tt.want != "") {
				t.Errorf("chooseLayer() = %q, %v, want %q", title, ok, tt.want)
			}
		})
	}
}

func randomData(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOras(t *testing.T) {
	reg := catalogtest.StartRegistry(t)
	ctx := context.Background()
	img := randomData(t, 3<<20+17)
	img[0], img[1] = 0x1f, 0x8b
	big := randomData(t, 4<<20) // sidecars larger than the image must still be dropped
	reg.Push(t, "images/debian", "13",
		catalogtest.Layer{MediaType: "application/vnd.dev.cosign.simplesigning.v1+json", Title: "cosign", Data: big},
		catalogtest.Layer{MediaType: "application/spdx+json", Title: "sbom.spdx", Data: big},
		catalogtest.Layer{MediaType: "application/vnd.bty.disk", Title: "debian-13.img.gz", Data: img},
		catalogtest.Layer{MediaType: "text/plain", Title: "debian-13.img.gz.sha256", Data: append([]byte(sha(img)), big...)},
	)
	src := "oras://" + reg.Host + "/images/debian:13"

	res, err := Resolve(ctx, src)
	if err != nil {
		t.Fatalf("Resolve(%s) = %v", src, err)
	}
	if res.SHA256 != sha(img) || res.SHA256From != DigestRegistry || res.Size != int64(len(img)) || res.Name != "debian-13.img.gz" || res.Format != format.Gzip.Catalog() || res.Source.Name() != "debian-13.img.gz" {
		t.Errorf("Resolve(%s) = %+v, want the image layer (sha256 %s, %d bytes, debian-13.img.gz)", src, res, sha(img), len(img))
	}
	for _, off := range []int64{0, 1, 1 << 20, int64(len(img)) - 1, int64(len(img))} {
		rc, size, err := res.Source.Open(ctx, off)
		if err != nil {
			t.Fatalf("Open(%d) = %v", off, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || size != int64(len(img)) || !bytes.Equal(got, img[off:]) {
			t.Errorf("Open(%d) = size %d, %d bytes, %v, want the layer from byte %d", off, size, len(got), err, off)
		}
	}

	t.Run("by digest", func(t *testing.T) {
		r := &Resolver{}
		m, err := r.registry().repository(orasRef{Host: reg.Host, Repository: "images/debian", Tag: "13"})
		if err != nil {
			t.Fatal(err)
		}
		d, err := m.Resolve(ctx, "13")
		if err != nil {
			t.Fatal(err)
		}
		res, err := Resolve(ctx, "oras://"+reg.Host+"/images/debian@"+d.Digest.String())
		if err != nil || res.SHA256 != sha(img) {
			t.Errorf("Resolve(@%s) = %+v, %v, want the image layer", d.Digest, res, err)
		}
	})

	t.Run("tampered blob", func(t *testing.T) {
		pushed := reg.Push(t, "images/tampered", "1", catalogtest.Layer{MediaType: "application/vnd.bty.disk", Title: "t.img", Data: randomData(t, 1<<20)})
		res, err := Resolve(ctx, "oras://"+reg.Host+"/images/tampered:1")
		if err != nil {
			t.Fatal(err)
		}
		reg.Tamper(t, pushed[0].Digest)
		rc, _, err := res.Source.Open(ctx, 0)
		if err != nil {
			t.Fatalf("Open() = %v", err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		// The engine hashes what it reads against res.SHA256 and fails.
		if sha(got) == res.SHA256 {
			t.Errorf("tampered blob read back with the layer digest %s, want other bytes", res.SHA256)
		}
	})

	t.Run("index", func(t *testing.T) {
		ds := reg.PushIndex(t, "images/multi", "latest")
		_, err := Resolve(ctx, "oras://"+reg.Host+"/images/multi:latest")
		if !errors.Is(err, ErrIndex) || !strings.Contains(err.Error(), "pick a platform digest") || !strings.Contains(err.Error(), "@"+ds[0].String()+" (linux/amd64)") {
			t.Errorf("Resolve(index) = %v, want ErrIndex asking for a platform digest, listing %s", err, ds[0])
		}
	})

	t.Run("missing", func(t *testing.T) {
		for _, ref := range []string{"images/debian:99", "images/nothing:1"} {
			_, err := Resolve(ctx, "oras://"+reg.Host+"/"+ref)
			if !errors.Is(err, ErrNotFound) || !errors.Is(err, category.ErrSource) {
				t.Errorf("Resolve(%s) = %v, want ErrNotFound", ref, err)
			}
		}
	})

	t.Run("no image layer", func(t *testing.T) {
		reg.Push(t, "images/sigs", "1", catalogtest.Layer{MediaType: "application/vnd.dev.cosign.simplesigning.v1+json", Title: "sig", Data: []byte("x")})
		_, err := Resolve(ctx, "oras://"+reg.Host+"/images/sigs:1")
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "no layer looks like a disk image") {
			t.Errorf("Resolve(signatures only) = %v, want ErrNotFound", err)
		}
	})

	t.Run("catalog artifact", func(t *testing.T) {
		reg.Push(t, "images/alias", "1", catalogtest.Layer{MediaType: "application/vnd.bty.disk", Title: "alias.img", Data: []byte("alias")})
		alias := "oras://" + reg.Host + "/images/alias:1"
		cat := fmt.Sprintf("version = 1\n[[images]]\nname = \"debian\"\nsrc = %q\nsha256 = %q\n[[images]]\nname = \"wrong\"\nsrc = %q\nsha256 = %q\n", src, sha(img), alias, sumA)
		reg.Push(t, "bty/catalog", "v1",
			catalogtest.Layer{MediaType: "application/toml", Title: "catalog.toml", Data: []byte(cat)},
			catalogtest.Layer{MediaType: "application/octet-stream", Title: "bigger.bin", Data: big},
		)
		r := &Resolver{Catalogs: []string{"oras://" + reg.Host + "/bty/catalog:v1"}}
		res, err := r.Resolve(ctx, "debian")
		if err != nil || res.SHA256 != sha(img) || res.SHA256From != DigestCatalog || res.Name != "debian" {
			t.Errorf("Resolve(debian) via an oras catalog = %+v, %v, want the image layer", res, err)
		}
		if _, err := r.Resolve(ctx, "wrong"); !errors.Is(err, category.ErrIntegrity) {
			t.Errorf("Resolve(wrong) = %v, want category.ErrIntegrity: the catalog's sha256 is not the layer's", err)
		}
	})
}

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		host string
		want bool
	}{
		{"localhost:5000", true},
		{"LOCALHOST", true},
		{"127.0.0.1:5000", true},
		{"127.1.2.3", true},
		{"[::1]:5000", true},
		{"ghcr.io", false},
		{"10.0.0.1:5000", false},
		{"localhost.example.com", false},
	}
	for _, tt := range tests {
		if got := isLoopback(tt.host); got != tt.want {
			t.Errorf("isLoopback(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
	for _, tt := range []struct {
		host      string
		plain     bool
		wantPlain bool
	}{
		{"ghcr.io", false, false},
		{"ghcr.io", true, true},
		{"127.0.0.1:5000", false, true},
	} {
		g := &Registry{PlainHTTP: tt.plain}
		repo, err := g.repository(orasRef{Host: tt.host, Repository: "a/b", Tag: "t"})
		if err != nil || repo.PlainHTTP != tt.wantPlain {
			t.Errorf("Registry{PlainHTTP: %v}.repository(%s).PlainHTTP = %v, %v, want %v", tt.plain, tt.host, repo.PlainHTTP, err, tt.wantPlain)
		}
	}
}

// TestOrasDockerCredentials: a registry that wants basic auth gets the
// credentials of the Docker config file; without them, access is denied with
// a hint, and not retried.
func TestOrasDockerCredentials(t *testing.T) {
	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[{"mediaType":"application/octet-stream","digest":"sha256:` + sumA + `","size":5,"annotations":{"org.opencontainers.image.title":"x.img"}}]}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "alice" || p != "s3cret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		if r.URL.Path != "/v2/bty/private/manifests/1" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
		w.Header().Set("Docker-Content-Digest", digest.FromBytes(manifest).String())
		w.Write(manifest)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	dir := t.TempDir()
	config := filepath.Join(dir, "config.json")
	auth := base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))
	if err := os.WriteFile(config, []byte(`{"auths":{"`+host+`":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	src := "oras://" + host + "/bty/private:1"

	r := &Resolver{Registry: Registry{DockerConfig: config}}
	res, err := r.Resolve(context.Background(), src)
	if err != nil || res.SHA256 != sumA || res.Name != "x.img" {
		t.Errorf("Resolve(%s) with credentials = %+v, %v, want layer x.img", src, res, err)
	}

	r = &Resolver{Registry: Registry{DockerConfig: filepath.Join(dir, "none.json")}}
	_, err = r.Resolve(context.Background(), src)
	if !errors.Is(err, category.ErrSource) || !isPermanentErr(err) || !strings.Contains(err.Error(), "docker login") {
		t.Errorf("Resolve(%s) without credentials = %v, want a permanent access-denied error", src, err)
	}
}

func isPermanentErr(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}
