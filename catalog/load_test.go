package catalog

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"bty/category"
)

const goodCatalog = `version = 1
[[images]]
name = "debian.img.xz"
src = "https://example.com/debian.img.xz"
sha256 = "` + sumA + `"
size_bytes = 123
format = "img.xz"
`

func TestLoad(t *testing.T) {
	big := strings.Repeat("# padding\n", MaxCatalogSize/10+1)
	mux := http.NewServeMux()
	mux.HandleFunc("/catalog.toml", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, goodCatalog) })
	mux.HandleFunc("/big.toml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(big)))
		fmt.Fprint(w, big)
	})
	mux.HandleFunc("/big-chunked.toml", func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < len(big); i += 1 << 20 {
			w.Write([]byte(big[i:min(len(big), i+1<<20)]))
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/broken.toml", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "oops", http.StatusInternalServerError) })
	mux.HandleFunc("/invalid.toml", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "version = 9\n") })
	mux.HandleFunc("/stall.toml", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	dir := t.TempDir()
	local := filepath.Join(dir, "local.toml")
	if err := os.WriteFile(local, []byte(goodCatalog), 0o644); err != nil {
		t.Fatal(err)
	}
	closed := closedPort(t)

	tests := []struct {
		name    string
		src     string
		wantErr error  // nil: loads
		wantMsg string // substring of the error
	}{
		{"http", srv.URL + "/catalog.toml", nil, ""},
		{"local file", local, nil, ""},
		{"http 404", srv.URL + "/missing.toml", ErrNotFound, "404"},
		{"http 500", srv.URL + "/broken.toml", category.ErrSource, "500"},
		{"over 4 MiB with length", srv.URL + "/big.toml", category.ErrSource, "more than 4 MiB"},
		{"over 4 MiB chunked", srv.URL + "/big-chunked.toml", category.ErrSource, "larger than 4 MiB"},
		{"invalid", srv.URL + "/invalid.toml", ErrInvalid, "version 9"},
		{"missing file", filepath.Join(dir, "nope.toml"), ErrNotFound, "check the path"},
		{"nothing listening", "http://" + closed + "/catalog.toml", category.ErrSource, "cannot connect"},
		{"stalled server", srv.URL + "/stall.toml", category.ErrSource, "no answer within"},
		{"unsupported scheme", "ftp://h/c.toml", category.ErrSource, "not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Only the stalled server needs the deadline; the others must
			// fail on their own, however loaded the machine is.
			r := &Resolver{Timeout: time.Minute}
			if tt.name == "stalled server" {
				r.Timeout = 500 * time.Millisecond
			}
			start := time.Now()
			c, err := r.Load(context.Background(), tt.src)
			if tt.wantErr == nil {
				if err != nil || len(c.Images) != 1 || c.Images[0].SHA256 != sumA {
					t.Fatalf("Load(%s) = %+v, %v, want one image", tt.src, c, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Load(%s) = %v, want %v containing %q", tt.src, err, tt.wantErr, tt.wantMsg)
			}
			if d := time.Since(start); d > 30*time.Second { // far below the minute: it did not wait for the deadline
				t.Errorf("Load(%s) took %s, want a quick failure", tt.src, d)
			}
		})
	}
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestDefaultCatalog(t *testing.T) {
	tests := []struct{ env, want string }{
		{"", DefaultCatalogSrc},
		{"http://lan:8080/catalog.toml", "http://lan:8080/catalog.toml"},
		{"none", ""},
	}
	for _, tt := range tests {
		got := DefaultCatalog(func(k string) string {
			if k == "BTY_DEFAULT_CATALOG" {
				return tt.env
			}
			return ""
		})
		if got != tt.want {
			t.Errorf("DefaultCatalog(BTY_DEFAULT_CATALOG=%q) = %q, want %q", tt.env, got, tt.want)
		}
	}
}

func TestResolver(t *testing.T) {
	root := t.TempDir()
	xz := []byte{0xfd, '7', 'z', 'X', 'Z', 0, 1, 2, 3}
	if err := os.WriteFile(filepath.Join(root, "debian.img.xz"), xz, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "debian.img.xz.sha256"), []byte(sumA+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, goodCatalog+`
[[images]]
name = "ubuntu.img"
src = "https://example.com/ubuntu.img"
`)
	}))
	defer srv.Close()
	r := &Resolver{ImageRoot: root, Catalogs: []string{srv.URL + "/c.toml"}}
	ctx := context.Background()

	rows, err := r.Images(ctx)
	if err != nil || len(rows) != 3 {
		t.Fatalf("Images() = %d rows, %v, want 3 rows", len(rows), err)
	}

	tests := []struct {
		spec                 string
		wantName, wantSource string
		wantSHA              string
	}{
		// The image root comes before the catalog, which has the same name.
		{"debian.img.xz", "debian.img.xz", filepath.Join(root, "debian.img.xz"), sumA},
		{"ubuntu.img", "ubuntu.img", "https://example.com/ubuntu.img", ""},
		{"https://example.com/other.img", "https://example.com/other.img", "https://example.com/other.img", ""},
		{filepath.Join(root, "debian.img.xz"), filepath.Join(root, "debian.img.xz"), filepath.Join(root, "debian.img.xz"), sumA},
	}
	for _, tt := range tests {
		got, err := r.Resolve(ctx, tt.spec)
		if err != nil {
			t.Errorf("Resolve(%q) = %v", tt.spec, err)
			continue
		}
		if got.Name != tt.wantName || got.Source.Name() != tt.wantSource || got.SHA256 != tt.wantSHA {
			t.Errorf("Resolve(%q) = name %q source %q sha %q, want %q %q %q", tt.spec, got.Name, got.Source.Name(), got.SHA256, tt.wantName, tt.wantSource, tt.wantSHA)
		}
	}

	_, err = r.Resolve(ctx, "nope.img")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "bty images") {
		t.Errorf("Resolve(nope.img) = %v, want ErrNotFound with a hint", err)
	}

	bad := &Resolver{Catalogs: []string{srv.URL + "/c.toml", "http://" + closedPort(t) + "/c.toml"}}
	if _, err := bad.Resolve(ctx, "ubuntu.img"); !errors.Is(err, category.ErrSource) {
		t.Errorf("Resolve with an unreachable catalog = %v, want category.ErrSource", err)
	}
}

// TestLists: each place's list arrives as it is read, a slow catalog after
// the others, a failed one with its error and no rows; cancelling gives up
// on the slow one. Images fails on the first failed place, in order.
func TestLists(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "local.img"), []byte("image"), 0o644); err != nil {
		t.Fatal(err)
	}
	stall := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow.toml" {
			select {
			case <-r.Context().Done():
			case <-stall:
			}
			return
		}
		fmt.Fprint(w, goodCatalog)
	}))
	defer srv.Close()
	defer close(stall)
	slow, good, bad := srv.URL+"/slow.toml", srv.URL+"/c.toml", "http://"+closedPort(t)+"/c.toml"
	r := &Resolver{ImageRoot: root, Catalogs: []string{slow, good, bad}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := r.Lists(ctx)
	got := map[int]List{}
	for len(got) < 3 {
		l := <-ch
		got[l.Index] = l
	}
	if _, ok := got[1]; ok {
		t.Fatalf("the stalled catalog's list arrived before the others")
	}
	if l := got[0]; l.Err != nil || len(l.Rows) != 1 || l.Source != root {
		t.Errorf("the image root's list = %+v, want one row", l)
	}
	if l := got[2]; l.Err != nil || len(l.Rows) == 0 || l.Source != good {
		t.Errorf("the good catalog's list = %+v, want its rows", l)
	}
	if l := got[3]; !errors.Is(l.Err, category.ErrSource) || len(l.Rows) != 0 || l.Source != bad {
		t.Errorf("the unreachable catalog's list = %+v, want category.ErrSource and no rows", l)
	}
	cancel()
	if l := <-ch; l.Index != 1 || !errors.Is(l.Err, context.Canceled) {
		t.Errorf("the stalled catalog's list after cancel = %+v, want context.Canceled", l)
	}
	if l, ok := <-ch; ok {
		t.Errorf("after the last list: %+v, want the channel closed", l)
	}

	_, err := (&Resolver{ImageRoot: root, Catalogs: []string{good, bad}}).Images(context.Background())
	if !errors.Is(err, category.ErrSource) || !strings.Contains(err.Error(), bad) {
		t.Errorf("Images with an unreachable catalog = %v, want category.ErrSource naming it", err)
	}
}

// TestResolverIn: a resolver for other places keeps every setting of how r
// reaches things; a setting In forgets is a flag silently dropped where the
// wizard chooses its catalogs (--plain-http was, once).
func TestResolverIn(t *testing.T) {
	r := &Resolver{}
	v := reflect.ValueOf(r).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		if !v.Type().Field(i).IsExported() {
			continue
		}
		// A non-zero value of every exported field.
		switch f.Kind() {
		case reflect.Pointer:
			f.Set(reflect.New(f.Type().Elem()))
		case reflect.Interface:
			f.Set(reflect.ValueOf(strings.NewReader("")))
		case reflect.Struct:
			f.Set(reflect.ValueOf(Registry{PlainHTTP: true, DockerConfig: "/config.json", Stall: time.Second}))
		case reflect.Slice:
			f.Set(reflect.ValueOf([]string{"old.toml"}))
		case reflect.String:
			f.SetString("/old")
		case reflect.Int64:
			f.SetInt(7)
		default:
			t.Fatalf("Resolver.%s: a field of kind %s; teach this test a value for it", v.Type().Field(i).Name, f.Kind())
		}
	}
	in := reflect.ValueOf(r.In("/root", []string{"new.toml"})).Elem()
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		if !v.Type().Field(i).IsExported() {
			continue
		}
		want := v.Field(i).Interface()
		switch name {
		case "ImageRoot":
			want = "/root"
		case "Catalogs":
			want = []string{"new.toml"}
		}
		if got := in.Field(i).Interface(); !reflect.DeepEqual(got, want) {
			t.Errorf("In(...).%s = %v, want %v", name, got, want)
		}
	}
}
