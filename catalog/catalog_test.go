package catalog

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const sumA = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func mustRef(t *testing.T, src string) string {
	t.Helper()
	r, err := Ref(src)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Entry
	}{
		{
			name: "wire example, every field",
			in: `version = 1                       # required, integer 1

[[images]]
name        = "debian-13.img.xz"
src         = "https://host/path/debian-13.img.xz"
sha256      = "` + strings.ToUpper(sumA) + `  "
format      = "img.xz"
size_bytes  = 1234567890
description = "Debian 13, headless"
arch        = "x86_64"
ref         = "` + mustRef(t, "https://host/path/debian-13.img.xz") + `"
`,
			want: []Entry{{
				Name: "debian-13.img.xz", Src: "https://host/path/debian-13.img.xz", SHA256: sumA,
				Format: "img.xz", Size: 1234567890, Description: "Debian 13, headless", Arch: "x86_64",
				Ref: mustRef(t, "https://host/path/debian-13.img.xz"), From: "c.toml", Line: 3,
			}},
		},
		{
			name: "server-side keys ignored",
			in: `version = 1
server = "bty-web 2.1"
generated_at = 2025-01-01T00:00:00Z
[server_info]
machines = 12

[[images]]
name = "a.img"
src = "oras://GHCR.io/Org/Img:v1"
uploaded_by = "alice"
downloads = 42
tags = ["lts", "x86"]
[images.extra]
color = "blue"
`,
			want: []Entry{{Name: "a.img", Src: "oras://GHCR.io/Org/Img:v1", Ref: mustRef(t, "oras://ghcr.io/org/img:v1"), From: "c.toml", Line: 7}},
		},
		{
			name: "ref given in canonical form of a non-canonical src",
			in: `version = 1
[[images]]
name = "x"
src = "HTTPS://EXAMPLE.com:443/Path/Foo.GZ"
ref = "` + strings.ToUpper(mustRef(t, "https://example.com/Path/Foo.GZ")) + `"
`,
			want: []Entry{{Name: "x", Src: "HTTPS://EXAMPLE.com:443/Path/Foo.GZ", Ref: mustRef(t, "https://example.com/Path/Foo.GZ"), From: "c.toml", Line: 2}},
		},
		{
			name: "inline array of tables",
			in: `version = 1
images = [
  { name = "a", src = "https://h/a" },
  { name = "b", src = "https://h/b", format = "QCOW2" },
]
`,
			want: []Entry{
				{Name: "a", Src: "https://h/a", Ref: mustRef(t, "https://h/a"), From: "c.toml", Line: 3},
				{Name: "b", Src: "https://h/b", Format: "qcow2", Ref: mustRef(t, "https://h/b"), From: "c.toml", Line: 4},
			},
		},
		{name: "no images", in: "version = 1\n", want: nil},
		{
			name: "same src twice, two names",
			in: `version = 1
[[images]]
name = "a"
src = "https://h/x"
[[images]]
name = "b"
src = "https://H/x"
`,
			want: []Entry{
				{Name: "a", Src: "https://h/x", Ref: mustRef(t, "https://h/x"), From: "c.toml", Line: 2},
				{Name: "b", Src: "https://H/x", Ref: mustRef(t, "https://h/x"), From: "c.toml", Line: 5},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("c.toml", []byte(tt.in))
			if err != nil {
				t.Fatalf("Parse() = %v, want no error", err)
			}
			if diff := cmp.Diff(tt.want, c.Images, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Parse() images differ (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // every problem, in order
	}{
		{
			name: "version 2",
			in:   "version = 2\n",
			want: []string{"c.toml line 1: version 2 is not supported (bty reads version 1): use a catalog of version 1 or a newer bty"},
		},
		{
			name: "version missing",
			in:   "[[images]]\nname = \"a\"\nsrc = \"https://h/a\"\n",
			want: []string{"c.toml: version is missing: add version = 1 at the top"},
		},
		{
			name: "version a string",
			in:   "# comment\nversion = \"1\"\n",
			want: []string{`c.toml line 2: version "1" is not supported (bty reads version 1, an integer): write version = 1`},
		},
		{
			name: "not TOML",
			in:   "version = 1\n[[images]\nname = 1\n",
			want: []string{"c.toml line 2: expected ']]' to close array table name: fix the TOML"},
		},
		{
			name: "duplicate name",
			in: `version = 1
[[images]]
name = "a"
src = "https://h/a"

[[images]]
name = "a"
src = "https://h/b"
`,
			want: []string{`c.toml line 7: image "a": name is also used by the image on line 2: give each image its own name`},
		},
		{
			name: "missing name",
			in:   "version = 1\n[[images]]\nsrc = \"https://h/a\"\n",
			want: []string{`c.toml line 2: image #1: name is missing: add name = "<file name>"`},
		},
		{
			name: "empty name",
			in:   "version = 1\n[[images]]\nsrc = \"https://h/a\"\nname = \"\"\n",
			want: []string{`c.toml line 4: image #1: name is missing: add name = "<file name>"`},
		},
		{
			name: "missing src",
			in:   "version = 1\n[[images]]\nname = \"a\"\n",
			want: []string{`c.toml line 2: image "a": src is missing: add the http(s):// or oras:// URL of the image`},
		},
		{
			name: "malformed sha256",
			in:   "version = 1\n[[images]]\nname = \"a\"\nsrc = \"https://h/a\"\nsha256 = \"abc\"\n",
			want: []string{`c.toml line 5: image "a": sha256 "abc" is not 64 hex digits: fix or remove it`},
		},
		{
			name: "sha256 with a non-hex digit",
			in:   "version = 1\n[[images]]\nname = \"a\"\nsrc = \"https://h/a\"\nsha256 = \"" + sumA[:63] + "g\"\n",
			want: []string{`c.toml line 5: image "a": sha256 "` + sumA[:63] + `g" is not 64 hex digits: fix or remove it`},
		},
		{
			name: "ref mismatch",
			in:   "version = 1\n[[images]]\nname = \"a\"\nsrc = \"https://h/a\"\nref = \"" + sumA + "\"\n",
			want: []string{`c.toml line 5: image "a": ref ` + sumA + ` does not match src (its canonical ref is ` + mustRef(t, "https://h/a") + `): fix or remove ref`},
		},
		{
			name: "file src",
			in:   "version = 1\n[[images]]\nname = \"a\"\nsrc = \"file:///srv/a.img\"\n",
			want: []string{`c.toml line 4: image "a": src "file:///srv/a.img": file:// is not allowed in a catalog: put local images in the image root`},
		},
		{
			name: "other scheme",
			in:   "version = 1\n[[images]]\nname = \"a\"\nsrc = \"ftp://h/a\"\n",
			want: []string{`c.toml line 4: image "a": src "ftp://h/a": scheme ftp:// is not supported: give an http(s):// or oras:// URL`},
		},
		{
			name: "empty src",
			in:   "version = 1\n[[images]]\nname = \"a\"\nsrc = \"\"\n",
			want: []string{`c.toml line 4: image "a": src is empty: give an http(s):// or oras:// URL`},
		},
		{
			name: "no host",
			in:   "version = 1\n[[images]]\nname = \"a\"\nsrc = \"https:///a\"\n",
			want: []string{`c.toml line 4: image "a": src "https:///a" has no host: fix the URL`},
		},
		{
			name: "oras repository of one segment",
			in:   "version = 1\n[[images]]\nname = \"a\"\nsrc = \"oras://ghcr.io/a:1\"\n",
			want: []string{`c.toml line 4: image "a": src "oras://ghcr.io/a:1": the repository needs at least two path segments: write oras://HOST/OWNER/REPO:TAG`},
		},
		{
			name: "wrong types",
			in:   "version = 1\n[[images]]\nname = 7\nsrc = \"https://h/a\"\nsize_bytes = \"big\"\n",
			want: []string{
				`c.toml line 3: image #1: name must be a string, not 7: quote it`,
				`c.toml line 5: image #1: size_bytes "big" is not a number of bytes: write a whole number or remove it`,
			},
		},
		{
			name: "every problem listed",
			in: `version = 3
[[images]]
name = "a"
src = "https://h/a"
sha256 = "nope"
[[images]]
name = "b"
[[images]]
name = "a"
src = "https://h/c"
`,
			want: []string{
				"c.toml line 1: version 3 is not supported (bty reads version 1): use a catalog of version 1 or a newer bty",
				`c.toml line 5: image "a": sha256 "nope" is not 64 hex digits: fix or remove it`,
				`c.toml line 6: image "b": src is missing: add the http(s):// or oras:// URL of the image`,
				`c.toml line 9: image "a": name is also used by the image on line 2: give each image its own name`,
			},
		},
		{
			name: "inline tables have lines too",
			in:   "version = 1\nimages = [\n  { name = \"a\", src = \"https://h/a\" },\n  { name = \"a\", src = \"https://h/b\" },\n]\n",
			want: []string{`c.toml line 4: image "a": name is also used by the image on line 3: give each image its own name`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("c.toml", []byte(tt.in))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse() = %+v, %v, want an error wrapping ErrInvalid", c, err)
			}
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("Parse() error %T, want *InvalidError", err)
			}
			var got []string
			for _, p := range inv.Problems {
				got = append(got, p.String())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse() problems differ (-want +got):\n%s", diff)
			}
		})
	}
}

func TestInvalidErrorMessage(t *testing.T) {
	_, err := Parse("c.toml", []byte("version = 1\n[[images]]\nname = \"a\"\n[[images]]\nname = \"b\"\n"))
	want := `c.toml line 2: image "a": src is missing: add the http(s):// or oras:// URL of the image (and 1 more: run bty catalog check c.toml)`
	if err == nil || err.Error() != want {
		t.Errorf("Parse() = %v, want %q", err, want)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("version = 1\n[[images]]\nname = \"a\"\nsrc = \"https://h/a\"\n"))
	f.Add([]byte("version = 1\nimages = [{name = \"a\", src = \"oras://r/a/b:c\"}]\n"))
	f.Add([]byte("version = 2\n[[images]]\n[images.x]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.toml", data)
		if err == nil {
			for _, e := range c.Images {
				if e.Name == "" || e.Ref == "" {
					t.Errorf("Parse() accepted an entry without name or ref: %+v", e)
				}
			}
		}
	})
}
