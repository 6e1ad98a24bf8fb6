package server

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
	// The server counts what it served of the index, to the byte.
	metrics := f.want(f.do("GET", "/metrics", ""), 200, "GET /metrics").body
	for _, line := range []string{`bty_served_requests_total{kind="index"} 1`, `bty_served_bytes_total{kind="index"} ` + itoa(int64(len(r.body)))} {
		if !strings.Contains(metrics, line+"\n") {
			t.Errorf("GET /metrics has no line %q after the index (%d bytes) was fetched once:\n%s", line, len(r.body), metrics)
		}
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

// TestDeltaStatus: what a delta reflash fetched, as the machine reports it,
// is kept on its cycle and said in the machine.flashed event, 0 included; a
// full flash's status, which has no bytes_fetched, leaves it out.
func TestDeltaStatus(t *testing.T) {
	f := newFixture(t)
	f.register(wire.BootFlashAlways, `,"delta":true`)
	for _, tc := range []struct {
		fetched string // the status's bytes_fetched, "" for none
		want    string // in the event's summary
	}{
		{"1258291", "delta: 1.2 MiB fetched, 3.0 MiB written"},
		{"0", "delta: 0 B fetched, 3.0 MiB written"},
		{"", ""},
	} {
		if s := f.boot("b" + tc.fetched); !isLive(s) {
			t.Fatalf("boot got %q, want the live environment", s)
		}
		p := f.plan()
		body := `{"status":"done","plan_id":` + itoa(p.PlanID) + `,"sha256":"` + f.sha + `","bytes_written":3145728`
		if tc.fetched != "" {
			body += `,"bytes_fetched":` + tc.fetched
		}
		f.want(f.status(p, body+"}"), 204, "status done")
		c := f.machine().Cycle
		var evs wire.Events
		json.Unmarshal([]byte(f.adm("GET", "/events?kind=machine.flashed&limit=1", "").body), &evs)
		if len(evs.Events) != 1 {
			t.Fatalf("no machine.flashed event after the status")
		}
		kept, summary := "none", evs.Events[0].Summary
		if c.BytesFetched != nil {
			kept = itoa(*c.BytesFetched)
		}
		switch {
		case tc.fetched == "" && (kept != "none" || strings.Contains(summary, "delta")):
			t.Errorf("full flash: cycle bytes_fetched %s, event %q; want none, no delta in the summary", kept, summary)
		case tc.fetched != "" && (kept != tc.fetched || !strings.Contains(summary, tc.want)):
			t.Errorf("delta status bytes_fetched %s: cycle %s, event %q; want the bytes kept and %q in the summary", tc.fetched, kept, summary, tc.want)
		}
		f.boot("b" + tc.fetched + "-disk")
	}
	if r := f.status(wire.Plan{}, `{"status":"done","bytes_fetched":-1}`); r.code != 422 {
		t.Errorf("status with bytes_fetched -1 = %d, want 422", r.code)
	}
}
