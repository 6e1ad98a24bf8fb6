package catalog

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"bty/format"
)

// TestCheck: each catalog is valid (Parse takes it, as a flash does) and
// Check warns about what is probably a mistake, naming the key meant.
func TestCheck(t *testing.T) {
	sum := `sha256 = "` + sumA + `"`
	for _, tc := range []struct {
		name string
		in   string
		want []string // Problem.String() of each warning
	}{
		{"clean", "version = 1\n[[images]]\nname = \"a\"\nsrc = \"https://h/a\"\n" + sum + "\n", nil},
		{"oras without sha256: the layer digest is checked", "version = 1\n[[images]]\nname = \"a\"\nsrc = \"oras://ghcr.io/o/a:v1\"\n", nil},
		{"misspelt keys", "verison = 1\nversion = 1\n[[images]]\nname = \"a\"\nsrc = \"https://h/a\"\n" + sum + "\nSize = 3\ndesc = \"x\"\nurl = \"https://h/b\"\n", []string{
			`c.toml line 1: unknown key "verison" is ignored: did you mean "version"?`,
			`c.toml line 7: image "a": unknown key "Size" is ignored: did you mean "size_bytes"?`,
			`c.toml line 8: image "a": unknown key "desc" is ignored: did you mean "description"?`,
			`c.toml line 9: image "a": unknown key "url" is ignored: did you mean "src"?`,
		}},
		{"a server's own keys", "version = 1\ngenerated_at = 2025-01-01T00:00:00Z\n[[images]]\nname = \"a\"\nsrc = \"https://h/a\"\n" + sum + "\nuploaded_by = \"alice\"\n", []string{
			`c.toml line 2: unknown key "generated_at" is ignored (bty does not read it)`,
			`c.toml line 7: image "a": unknown key "uploaded_by" is ignored (bty does not read it)`,
		}},
		{"tables", "version = 1\n[image]\nname = \"x\"\n[[imagess]]\nname = \"a\"\n[meta]\nx = 1\n", []string{
			`c.toml line 2: unknown table [image] is ignored: did you mean [[images]]?`,
			`c.toml line 4: unknown table [[imagess]] is ignored: did you mean [[images]]?`,
			`c.toml line 6: unknown table [meta] is ignored (bty does not read it)`,
		}},
		{"inline tables", "version = 1\nimages = [{name = \"a\", src = \"https://h/a\", sha265 = \"x\"}]\n", []string{
			`c.toml line 2: image "a": unknown key "sha265" is ignored: did you mean "sha256"?`,
			`c.toml line 2: image "a": no sha256: bty would flash it without checking its digest (add sha256 = "<64 hex digits>")`,
		}},
		{"a strange format", "version = 1\n[[images]]\nname = \"a\"\nsrc = \"https://h/a\"\n" + sum + "\nformat = \"img.gzz\"\n", []string{
			`c.toml line 6: image "a": format "img.gzz" is not one bty knows (did you mean "img.gz"?): the image's bytes decide its format`,
		}},
		{"pending", "version = 1\n[[pending_images]]\nname = \"big.img\"\nsrc = \"http://h:8080/images/big.img\"\nsize_bytes = 42949672960\n", []string{
			`c.toml line 2: image "big.img": the server is still computing its sha256: bty lists it but does not flash it until the catalog lists it under [[images]]`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse("c.toml", []byte(tc.in)); err != nil {
				t.Fatalf("Parse = %v, want the catalog taken as it is", err)
			}
			_, warns, err := Check("c.toml", []byte(tc.in))
			if err != nil {
				t.Fatalf("Check = %v", err)
			}
			var got []string
			for _, w := range warns {
				got = append(got, w.String())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Check warnings (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCheckInvalid: an invalid catalog gives its problems as Parse does, and
// the warnings too.
func TestCheckInvalid(t *testing.T) {
	_, warns, err := Check("c.toml", []byte("version = 1\n[[images]]\nname = \"a\"\nsha265 = \"x\"\n"))
	if err == nil || !strings.Contains(err.Error(), "src is missing") || len(warns) != 1 || !strings.Contains(warns[0].Msg, `did you mean "sha256"?`) {
		t.Errorf("Check = %v, %v; want src missing and a warning about sha265", warns, err)
	}
}

func TestNearest(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"sha265", "sha256"}, {"SHA256", "sha256"}, {"sha-256", "sha256"}, {"size-bytes", "size_bytes"}, {"sizebytes", "size_bytes"},
		{"name", "name"}, {"nmae", "name"}, {"arc", "arch"}, {"checksum", "sha256"}, {"mirror_count", ""}, {"id", ""}, {"x", ""},
	} {
		if got := nearest(tc.in, entryKeys); got != tc.want {
			t.Errorf("nearest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestPendingRoundTrip: Encode puts pending entries in [[pending_images]],
// without a digest, and Parse reads them back as pending.
func TestPendingRoundTrip(t *testing.T) {
	in := []Entry{
		{Name: "a.img", Src: "http://h/images/a.img", SHA256: sumA, Format: format.Raw.Catalog(), Size: 3, Ref: mustRef(t, "http://h/images/a.img")},
		{Name: "big.img", Src: "http://h/images/big.img", Pending: true, Format: format.Raw.Catalog(), Size: 40 << 30, Ref: mustRef(t, "http://h/images/big.img")},
	}
	var b bytes.Buffer
	if err := Encode(&b, in); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "[[pending_images]]\nname = 'big.img'") || strings.Count(b.String(), "sha256") != 1 {
		t.Errorf("Encode =\n%s\nwant big.img under [[pending_images]] without sha256", b.String())
	}
	c, err := Parse("c.toml", b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	for i := range c.Images {
		c.Images[i].From, c.Images[i].Line = "", 0
	}
	if diff := cmp.Diff(in, c.Images); diff != "" {
		t.Errorf("Parse(Encode(entries)) (-want +got):\n%s", diff)
	}
}
