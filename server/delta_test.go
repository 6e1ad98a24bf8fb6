package server

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"strings"
	"testing"

	"bty/blockindex"
	"bty/catalog"
	"bty/wire"
)

// TestDeltaPlan: a machine whose binding asks for delta reflash gets a plan
// that says so and names the image's block index at the URL the machine
// reached the server at; the option survives a PATCH that does not name it
// and is reset by a PUT that does not.
func TestDeltaPlan(t *testing.T) {
	var cat *catalog.Server
	f := newFixture(t, func(o *Options) {
		blocks, err := blockindex.OpenStore(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		cat = catalog.NewServer(catalog.ServerOptions{Dir: o.ImagesDir, Blocks: blocks, Decode: func(_ context.Context, path string) (io.ReadCloser, error) {
			f, err := os.Open(path)
			if err != nil {
				return nil, err
			}
			return gzip.NewReader(f)
		}})
		o.Catalog = cat
	})
	cat.Warm(t.Context())

	f.register(wire.BootFlashAlways, `,"delta":true`)
	if m := f.machine(); !m.Delta {
		t.Errorf("machine after PUT delta:true = delta %v, want true", m.Delta)
	}
	p := f.flash("b1")
	if !p.Delta || !strings.HasPrefix(p.BlockIndex, f.ts.URL+"/blocks/") || p.BlockIndexDigest == "" {
		t.Fatalf("plan = %+v, want delta with the block index under %s/blocks/", p, f.ts.URL)
	}
	r := f.want(f.do("GET", strings.TrimPrefix(p.BlockIndex, f.ts.URL), ""), 200, "GET the plan's block index")
	if sum := sha256.Sum256([]byte(r.body)); "sha256:"+hex.EncodeToString(sum[:]) != p.BlockIndexDigest {
		t.Errorf("the block index's sha256 is %x, want the plan's %s", sum, p.BlockIndexDigest)
	}
	if ix, err := blockindex.Decode(strings.NewReader(r.body)); err != nil || ix.Length != 3000 {
		t.Errorf("the plan's block index = %+v, %v; want the index of the 3000-byte decoded image", ix, err)
	}

	f.boot("b1-disk") // flash-always: the disk boots once between flashes
	f.want(f.adm("PATCH", "/machines/"+testMAC, `{"labels":["rack1"]}`), 200, "PATCH labels")
	if p := f.flash("b2"); !p.Delta {
		t.Errorf("plan after a PATCH without delta = %+v, want delta still on", p)
	}
	f.boot("b2-disk")
	f.want(f.adm("PATCH", "/machines/"+testMAC, `{"delta":false}`), 200, "PATCH delta off")
	if p := f.flash("b3"); p.Delta || p.BlockIndex != "" {
		t.Errorf("plan after PATCH delta:false = %+v, want a full flash without a block index", p)
	}
	f.want(f.adm("PATCH", "/machines/"+testMAC, `{"delta":true}`), 200, "PATCH delta on")
	f.register(wire.BootFlashAlways)
	if m := f.machine(); m.Delta {
		t.Errorf("machine after a PUT without delta = delta true, want false (PUT replaces every setting)")
	}
}
