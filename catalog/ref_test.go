package catalog

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

func TestCanonical(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"wire http example", "HTTPS://EXAMPLE.com:443/Path/Foo.GZ", "https://example.com/Path/Foo.GZ"},
		{"wire oras example", "oras://GHCR.IO/Owner/Repo:LATEST", "oras://ghcr.io/owner/repo:LATEST"},
		{"http default port dropped", "http://Host:80/a", "http://host/a"},
		{"http other port kept", "http://host:8080/a", "http://host:8080/a"},
		{"https port 80 kept", "https://host:80/a", "https://host:80/a"},
		{"http port 443 kept", "http://host:443/a", "http://host:443/a"},
		{"user-info dropped", "https://user:pw@Host.example/x", "https://host.example/x"},
		{"query and fragment kept", "https://h/A%2Fb?Q=1#Frag", "https://h/A%2Fb?Q=1#Frag"},
		{"no percent-decoding", "https://h/a%20b", "https://h/a%20b"},
		{"trailing slash kept", "https://h/dir/", "https://h/dir/"},
		{"no path", "https://H", "https://h"},
		{"ipv6 host", "http://[::1]:80/x", "http://[::1]/x"},
		{"ipv6 host with port", "http://[::1]:8080/x", "http://[::1]:8080/x"},
		{"empty port dropped", "http://h:/x", "http://h/x"},
		{"oras digest", "oras://Reg.io:5000/A/B@sha256:ABCD", "oras://reg.io:5000/a/b@sha256:ABCD"},
		{"oras deep repository", "oras://reg/a/b/c:v1", "oras://reg/a/b/c:v1"},
		{"oras port and tag", "oras://localhost:5000/x/y:Tag", "oras://localhost:5000/x/y:Tag"},
		{"oras scheme case", "ORAS://reg/a/b:t", "oras://reg/a/b:t"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Canonical(tt.in)
			if err != nil || got != tt.want {
				t.Errorf("Canonical(%q) = %q, %v, want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestCanonicalErrors(t *testing.T) {
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"no scheme", "example.com/x.img"},
		{"ftp", "ftp://host/x.img"},
		{"file", "file:///x.img"},
		{"no host", "https:///path"},
		{"only user-info", "https://user@/path"},
		{"bad port", "http://h:abc/x"},
		{"oras one segment", "oras://ghcr.io/repo:tag"},
		{"oras no tag", "oras://ghcr.io/owner/repo"},
		{"oras empty tag", "oras://ghcr.io/owner/repo:"},
		{"oras no host", "oras:///owner/repo:tag"},
		{"oras bad digest", "oras://ghcr.io/owner/repo@nohex"},
		{"oras empty segment", "oras://ghcr.io/owner//repo:tag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := Canonical(tt.in); err == nil {
				t.Errorf("Canonical(%q) = %q, nil, want an error", tt.in, got)
			}
		})
	}
}

func TestRef(t *testing.T) {
	sum := sha256.Sum256([]byte("https://example.com/Path/Foo.GZ"))
	want := hex.EncodeToString(sum[:])
	for _, in := range []string{"HTTPS://EXAMPLE.com:443/Path/Foo.GZ", "https://example.com/Path/Foo.GZ", "https://u@Example.COM/Path/Foo.GZ"} {
		if got, err := Ref(in); err != nil || got != want {
			t.Errorf("Ref(%q) = %q, %v, want %q", in, got, err, want)
		}
	}
	// The same bytes under two srcs are two refs.
	a, _ := Ref("https://example.com/Path/Foo.GZ")
	b, _ := Ref("https://example.com/path/foo.gz")
	if a == b {
		t.Errorf("Ref of paths differing in case = same %s, want different refs", a)
	}
}
