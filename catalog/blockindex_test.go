package catalog

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const idxSum = "sha256:" + sumA

// TestParseBlockIndex: block_index is kept absolute, or resolved against the
// catalog's URL or directory; its digest is normalized; both reach Resolved.
func TestParseBlockIndex(t *testing.T) {
	tests := []struct {
		source, index, digest string
		want                  string
	}{
		{"https://h/c/catalog.toml", "https://other/x.index", idxSum, "https://other/x.index"},
		{"https://h/c/catalog.toml", "blocks/x.index", idxSum, "https://h/c/blocks/x.index"},
		{"http://h:8080/catalog.toml", "/blocks/x.index", " SHA256:" + strings.ToUpper(sumA), "http://h:8080/blocks/x.index"},
		{"/srv/cat/catalog.toml", "blocks/x.index", idxSum, filepath.Join("/srv/cat", "blocks/x.index")},
		{"catalog.toml", "x.index", idxSum, "x.index"},
		{"oras://r/o/c:v1", "https://h/x.index", idxSum, "https://h/x.index"},
	}
	for _, tt := range tests {
		in := "version = 1\n[[images]]\nname = \"a\"\nsrc = \"https://h/a.img\"\nsha256 = \"" + sumA + "\"\n" +
			"block_index = \"" + tt.index + "\"\nblock_index_digest = \"" + tt.digest + "\"\n"
		c, err := Parse(tt.source, []byte(in))
		if err != nil {
			t.Errorf("Parse(%s, block_index %q) = %v", tt.source, tt.index, err)
			continue
		}
		e := c.Images[0]
		if e.BlockIndex != tt.want || e.BlockIndexDigest != idxSum {
			t.Errorf("Parse(%s, block_index %q) = %q %q, want %q %q", tt.source, tt.index, e.BlockIndex, e.BlockIndexDigest, tt.want, idxSum)
		}
		if strings.HasPrefix(tt.source, "oras") {
			continue // resolving needs the registry
		}
		res, err := (&Resolver{}).Open(t.Context(), e)
		if err != nil {
			t.Fatal(err)
		}
		if res.BlockIndex != tt.want || res.BlockIndexDigest != idxSum {
			t.Errorf("Open(entry).BlockIndex = %q %q, want %q %q", res.BlockIndex, res.BlockIndexDigest, tt.want, idxSum)
		}
		if _, warns, err := Check(tt.source, []byte(in)); err != nil || len(warns) != 0 {
			t.Errorf("Check(catalog with a block index) = %v %v, want no warning", warns, err)
		}
	}
}

func TestParseBlockIndexInvalid(t *testing.T) {
	head := "version = 1\n[[images]]\nname = \"a\"\nsrc = \"https://h/a.img\"\n"
	tests := []struct {
		source, in, want string
	}{
		{"c.toml", "block_index = \"x.index\"\n", `c.toml line 5: image "a": block_index without block_index_digest: give both, or neither`},
		{"c.toml", "block_index_digest = \"" + idxSum + "\"\n", `c.toml line 5: image "a": block_index_digest without block_index: give both, or neither`},
		{"c.toml", "block_index = \"x.index\"\nblock_index_digest = \"" + sumA + "\"\n", `c.toml line 6: image "a": block_index_digest "` + sumA + `" is not "sha256:" and 64 hex digits: fix or remove it`},
		{"c.toml", "block_index = \"x.index\"\nblock_index_digest = \"sha256:abc\"\n", `c.toml line 6: image "a": block_index_digest "sha256:abc" is not "sha256:" and 64 hex digits: fix or remove it`},
		{"c.toml", "block_index = \"ftp://h/x\"\nblock_index_digest = \"" + idxSum + "\"\n", `c.toml line 5: image "a": block_index "ftp://h/x": scheme ftp: give an http(s) URL, or a path relative to the catalog`},
		{"c.toml", "block_index = \"\"\nblock_index_digest = \"" + idxSum + "\"\n", `c.toml line 5: image "a": block_index "": is empty: give the index's URL, or its path relative to the catalog`},
		{"oras://r/o/c:v1", "block_index = \"x.index\"\nblock_index_digest = \"" + idxSum + "\"\n", `oras://r/o/c:v1 line 5: image "a": block_index "x.index": a relative block_index needs a catalog read from a URL or a file, not from oras: give an http(s) URL`},
	}
	for _, tt := range tests {
		_, err := Parse(tt.source, []byte(head+tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %v, want %s", tt.in, err, tt.want)
		}
	}
}

func TestBlockIndexRoundTrip(t *testing.T) {
	in := []Entry{{Name: "a.img", Src: "http://h/images/a.img", SHA256: sumA, Ref: mustRef(t, "http://h/images/a.img"),
		BlockIndex: "http://h/blocks/" + sumA + ".index", BlockIndexDigest: idxSum}}
	var b bytes.Buffer
	if err := Encode(&b, in); err != nil {
		t.Fatal(err)
	}
	c, err := Parse("c.toml", b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	c.Images[0].From, c.Images[0].Line = "", 0
	if diff := cmp.Diff(in, c.Images); diff != "" {
		t.Errorf("Parse(Encode(entry with a block index)) (-want +got):\n%s", diff)
	}
}
