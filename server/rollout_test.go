package server

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"bty/catalog"
	"bty/server/store"
	"bty/wire"
)

const newImg = "new.img.gz" // the image the rollouts promote

// rolloutRig is a fleet of simulated machines with the label "ci", bound
// to testImg in flash-once mode, and the servers they boot from (several on
// one database).
type rolloutRig struct {
	f      *fixture
	urls   []string // the servers
	newRef string
	newSHA string
	rng    *rand.Rand
	ms     []*simMachine
}

// simMachine is one machine's side: the plan it is flashing, if any.
type simMachine struct {
	mac   string
	boots int
	plan  *wire.Plan
	fail  bool // its flashes fail
}

func newRolloutRig(t *testing.T, n, servers int, tweak ...func(*Options)) *rolloutRig {
	t.Helper()
	var newData bytes.Buffer
	zw := gzip.NewWriter(&newData)
	zw.Write(bytes.Repeat([]byte("new"), 1000))
	zw.Close()
	var opts Options
	f := newFixture(t, append([]func(*Options){func(o *Options) {
		os.WriteFile(filepath.Join(o.ImagesDir, newImg), newData.Bytes(), 0o644)
	}}, append(tweak, func(o *Options) { opts = *o })...)...)
	g := &rolloutRig{f: f, urls: []string{f.ts.URL}, newRef: refOf(t, testBase+"/images/"+newImg), newSHA: sum(newData.Bytes()),
		rng: rand.New(rand.NewPCG(18, uint64(n)))}
	for i := 1; i < servers; i++ {
		// Another server on the same database (its own connections).
		st, err := store.Open(t.Context(), f.state)
		if err != nil {
			t.Fatal(err)
		}
		o := opts
		o.Store = st
		o.Catalog = catalog.NewServer(catalog.ServerOptions{Dir: o.ImagesDir})
		srv := New(o)
		ts := httptest.NewServer(srv)
		t.Cleanup(func() { ts.Close(); srv.Close(); st.Close() })
		g.urls = append(g.urls, ts.URL)
	}
	for i := range n {
		m := &simMachine{mac: fmt.Sprintf("52:54:00:00:01:%02x", i)}
		body := fmt.Sprintf(`{"bty_image_ref":%q,"boot_mode":"bty-flash-once","target_disk_serial":"S%d","labels":["ci"]}`, f.ref, i)
		f.want(f.adm("PUT", "/machines/"+m.mac, body), 200, "PUT "+m.mac)
		g.ms = append(g.ms, m)
	}
	return g
}

// at sends a request to server i.
func (g *rolloutRig) at(i int, method, path, body string, hdr ...string) resp {
	g.f.t.Helper()
	g.f.tick(1e9)
	req, _ := http.NewRequest(method, g.urls[i]+path, strings.NewReader(body))
	for k := 0; k+1 < len(hdr); k += 2 {
		req.Header.Set(hdr[k], hdr[k+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		g.f.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, string(b), res.Header}
}

// step moves machine m one step on a random server: a boot (to the plan
// when it is offered a flash), or the status of the flash it holds. It
// returns what happened.
func (g *rolloutRig) step(m *simMachine) string {
	t, f := g.f.t, g.f
	t.Helper()
	srv := g.rng.IntN(len(g.urls))
	if m.plan != nil {
		p := *m.plan
		m.plan = nil
		status := `{"status":"done","plan_id":` + itoa(p.PlanID) + `,"sha256":"` + p.DiskImageSHA + `"}`
		if m.fail {
			status = `{"status":"failed","plan_id":` + itoa(p.PlanID) + `,"reason":"simulated write error","class":"io"}`
		}
		f.want(g.at(srv, "POST", "/pxe/"+m.mac+"/status", status, "Authorization", "Bearer "+p.AgentToken), 204, "status "+m.mac)
		if m.fail {
			return "failed"
		}
		return "done"
	}
	m.boots++
	script := f.want(g.at(srv, "GET", fmt.Sprintf("/pxe/%s?boot=%s-%d", wire.HexHyp(m.mac), wire.HexHyp(m.mac), m.boots), ""), 200, "boot "+m.mac).body
	if !isLive(script) {
		return "disk"
	}
	f.want(g.at(srv, "HEAD", "/boot/vmlinuz?mac="+wire.HexHyp(m.mac), ""), 200, "kernel")
	var p wire.Plan
	json.Unmarshal([]byte(f.want(g.at(srv, "GET", "/pxe/"+m.mac+"/plan", ""), 200, "plan").body), &p)
	if p.Mode != wire.ModeFlash {
		t.Fatalf("%s: plan %+v, want a flash", m.mac, p)
	}
	m.plan = &p
	return "flashing " + p.Name
}

// rollout reads rollout id.
func (g *rolloutRig) rollout(id int64) wire.Rollout {
	g.f.t.Helper()
	var ro wire.Rollout
	json.Unmarshal([]byte(g.f.want(g.f.adm("GET", fmt.Sprintf("/rollouts/%d", id), ""), 200, "GET rollout").body), &ro)
	return ro
}

// flashing counts the machines with a flash under way or armed, as the
// server's machine list says.
func (g *rolloutRig) flashing() int {
	g.f.t.Helper()
	var ms []wire.Machine
	json.Unmarshal([]byte(g.f.want(g.f.adm("GET", "/machines?label=ci", ""), 200, "machines").body), &ms)
	n := 0
	for _, m := range ms {
		if m.State == wire.StateFlashing || m.State == wire.StateArmed {
			n++
		}
	}
	return n
}

func (g *rolloutRig) start(parallel, failures int) wire.Rollout {
	g.f.t.Helper()
	var ro wire.Rollout
	body := fmt.Sprintf(`{"label":"ci","image":%q,"max_parallel":%d,"max_failures":%d}`, g.newRef, parallel, failures)
	json.Unmarshal([]byte(g.f.want(g.f.adm("POST", "/rollouts", body), 201, "start").body), &ro)
	return ro
}

// run steps random machines until stop says so (at most 2000 steps),
// checking after every step that at most limit machines flash, by the
// machines' cycles and by the rollout's count. It returns the most seen.
func (g *rolloutRig) run(id int64, limit int, stop func(wire.Rollout) bool) int {
	t := g.f.t
	t.Helper()
	most := 0
	for i := range 2000 {
		m := g.ms[g.rng.IntN(len(g.ms))]
		what := g.step(m)
		ro := g.rollout(id)
		n := g.flashing()
		most = max(most, n)
		if n > limit || ro.Counts[wire.MemberFlashing] > limit {
			t.Fatalf("step %d (%s %s): %d machines flashing, the rollout counts %d; the limit is %d", i, m.mac, what, n, ro.Counts[wire.MemberFlashing], limit)
		}
		if stop(ro) {
			return most
		}
	}
	t.Fatalf("the rollout did not get there in 2000 steps: %+v", g.rollout(id))
	return most
}

// TestRolloutParallel: a rollout of 20 machines at most 5 at a time, the
// machines booting through two servers on one database: never more than 5
// flash (checked after every step), the others boot their disk until their
// turn, and every machine ends with the new image.
func TestRolloutParallel(t *testing.T) {
	g := newRolloutRig(t, 20, 2)
	ro := g.start(5, 0)
	if ro.State != wire.RolloutRunning || ro.Counts[wire.MemberWaiting] != 20 {
		t.Fatalf("started %+v, want 20 waiting", ro)
	}
	// All 20 boot at once, half through each server: 5 get their turn.
	var wg sync.WaitGroup
	scripts := make([]string, len(g.ms))
	for i, m := range g.ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", fmt.Sprintf("%s/pxe/%s?boot=first-%d", g.urls[i%2], wire.HexHyp(m.mac), i), nil)
			if res, err := http.DefaultClient.Do(req); err == nil {
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				scripts[i] = string(b)
			}
		}()
	}
	wg.Wait()
	live := 0
	for i, s := range scripts {
		switch {
		case isLive(s):
			live++
		case !isDisk(s):
			t.Errorf("%s's first boot: %q", g.ms[i].mac, s)
		}
	}
	if ro := g.rollout(ro.ID); live != 5 || ro.Counts[wire.MemberFlashing] != 5 {
		t.Fatalf("20 machines booting at once: %d offered the flash, the rollout counts %d flashing; want 5", live, ro.Counts[wire.MemberFlashing])
	}
	most := g.run(ro.ID, 5, func(ro wire.Rollout) bool { return ro.State != wire.RolloutRunning })
	ro = g.rollout(ro.ID)
	if ro.State != wire.RolloutDone || ro.Counts[wire.MemberDone] != 20 || ro.EndedAt == nil {
		t.Errorf("rollout %+v, want done with 20 machines done", ro)
	}
	if most != 5 {
		t.Errorf("at most %d machines flashed at once; the test wants it to reach the limit of 5", most)
	}
	var ms []wire.Machine
	json.Unmarshal([]byte(g.f.adm("GET", "/machines?label=ci", "").body), &ms)
	for _, m := range ms {
		if m.State != wire.StateCurrent || m.Disk == nil || m.Disk.Ref != g.newRef {
			t.Errorf("%s: %s, disk %+v; want current with the new image", m.MAC, m.State, m.Disk)
		}
	}
	kinds := g.f.kinds()
	for _, k := range []string{"rollout.started", "rollout.admitted", "rollout.machine_done", "rollout.ended"} {
		if !has(kinds, k) {
			t.Errorf("no %s event", k)
		}
	}
	var evs wire.Events
	json.Unmarshal([]byte(g.f.adm("GET", "/events?subject_kind=rollout&subject_id="+itoa(ro.ID)+"&limit=500", "").body), &evs)
	if len(evs.Events) < 2 {
		t.Errorf("the rollout's own events: %+v", evs.Events)
	}
}

// TestRolloutFailures: with --max-failures 2 (and no retries), the third
// machine that fails stops the rollout: nobody else starts, the waiting
// machines keep booting their disk; resume accepts the failures so far and
// goes on.
func TestRolloutFailures(t *testing.T) {
	g := newRolloutRig(t, 20, 1, func(o *Options) { o.Retries = -1 })
	for _, i := range []int{1, 4, 6, 9, 12, 15} {
		g.ms[i].fail = true
	}
	ro := g.start(5, 2)
	g.run(ro.ID, 5, func(ro wire.Rollout) bool { return ro.State == wire.RolloutStopped })
	ro = g.rollout(ro.ID)
	if ro.Counts[wire.MemberFailed] != 3 || ro.Counts[wire.MemberWaiting] == 0 || !strings.Contains(ro.Reason, "3 machines failed") {
		t.Fatalf("stopped %+v, want 3 failed and some waiting", ro)
	}
	started := 20 - ro.Counts[wire.MemberWaiting]
	// The machines flashing finish; the waiting ones boot their disk.
	for range 200 {
		g.step(g.ms[g.rng.IntN(len(g.ms))])
	}
	ro = g.rollout(ro.ID)
	if got := 20 - ro.Counts[wire.MemberWaiting]; got != started || ro.State != wire.RolloutStopped || ro.Counts[wire.MemberFlashing] != 0 {
		t.Fatalf("after the stop: %+v; %d machines started, want %d (none after the stop) and none flashing", ro, got, started)
	}
	if kinds := g.f.kinds(); !has(kinds, "rollout.stopped") || !has(kinds, "rollout.machine_failed") {
		t.Errorf("events %v, want rollout.stopped and rollout.machine_failed", kinds)
	}
	for _, m := range g.ms {
		m.fail = false // the cause was found
	}
	var res wire.Rollout
	json.Unmarshal([]byte(g.f.want(g.f.adm("POST", fmt.Sprintf("/rollouts/%d/resume", ro.ID), ""), 200, "resume").body), &res)
	if res.State != wire.RolloutRunning || res.MaxFailures != 3 {
		t.Errorf("resumed %+v, want running, accepting the 3 failures so far", res)
	}
	g.run(ro.ID, 5, func(ro wire.Rollout) bool { return ro.State != wire.RolloutRunning })
	ro = g.rollout(ro.ID)
	if ro.State != wire.RolloutDone || ro.Counts[wire.MemberDone] != 17 || ro.Counts[wire.MemberFailed] != 3 {
		t.Errorf("after resume: %+v, want done: 17 done, 3 failed", ro)
	}
}

// TestRolloutPauseCancel: pause stops new starts (flashing machines go on),
// resume goes on, cancel leaves the waiting machines with their image; a
// new rollout on the label can then start.
func TestRolloutPauseCancel(t *testing.T) {
	g := newRolloutRig(t, 6, 1)
	ro := g.start(2, 0)
	act := func(action string, code int) wire.Rollout {
		var out wire.Rollout
		json.Unmarshal([]byte(g.f.want(g.f.adm("POST", fmt.Sprintf("/rollouts/%d/%s", ro.ID, action), ""), code, action).body), &out)
		return out
	}
	a, b, c, d := g.ms[0], g.ms[1], g.ms[2], g.ms[3]
	for _, m := range []*simMachine{a, b} {
		if what := g.step(m); !strings.HasPrefix(what, "flashing "+newImg) {
			t.Fatalf("%s: %s, want its turn", m.mac, what)
		}
	}
	if what := g.step(c); what != "disk" {
		t.Fatalf("a third machine with 2 flashing: %s, want its disk", what)
	}
	if p := act("pause", 200); p.State != wire.RolloutPaused {
		t.Fatalf("pause: %+v", p)
	}
	act("pause", http.StatusConflict)
	g.step(a) // done
	g.step(b) // done
	if what := g.step(c); what != "disk" {
		t.Errorf("paused, with free slots: %s, want the disk", what)
	}
	if p := act("resume", 200); p.State != wire.RolloutRunning {
		t.Fatalf("resume: %+v", p)
	}
	if what := g.step(c); !strings.HasPrefix(what, "flashing "+newImg) {
		t.Errorf("resumed: %s, want its turn", what)
	}
	cancelled := act("cancel", 200)
	if cancelled.State != wire.RolloutCancelled || cancelled.Counts[wire.MemberCancelled] != 3 || cancelled.EndedAt != nil {
		t.Fatalf("cancel: %+v, want 3 cancelled, c still flashing", cancelled)
	}
	act("resume", http.StatusConflict)
	// A cancelled machine keeps its image: it flashes the old one, as before.
	if what := g.step(d); what != "flashing "+testImg {
		t.Errorf("after cancel: %s, want a flash of its own image", what)
	}
	g.step(c)
	if ro := g.rollout(ro.ID); ro.EndedAt == nil || ro.Counts[wire.MemberDone] != 3 {
		t.Errorf("once c is done: %+v, want ended with 3 done", ro)
	}
	kinds := g.f.kinds()
	for _, k := range []string{"rollout.paused", "rollout.resumed", "rollout.cancelled", "rollout.ended"} {
		if !has(kinds, k) {
			t.Errorf("no %s event in %v", k, kinds)
		}
	}
	// A machine bound by hand to another image leaves the rollout: its
	// binding wins, and it is not held back.
	ro2 := g.start(2, 0) // the label is free again
	e := g.ms[4]
	g.f.want(g.f.adm("PATCH", "/machines/"+e.mac, fmt.Sprintf(`{"bty_image_ref":%q}`, refOf(t, testBase+"/images/other.img"))), 200, "rebind by hand")
	for _, x := range g.rollout(ro2.ID).Machines {
		if x.MAC == e.mac && x.State != wire.MemberSkipped {
			t.Errorf("%s bound by hand is %s in the rollout, want skipped", e.mac, x.State)
		}
	}
	g.f.want(g.f.adm("POST", "/rollouts", fmt.Sprintf(`{"label":"ci","image":%q,"max_parallel":1,"max_failures":0}`, g.newRef)), http.StatusConflict, "a second rollout of the label")
}

// TestRolloutPower: machines with a power driver are power-cycled when their
// turn comes (at the start, and when a flash ends), at most max_parallel.
func TestRolloutPower(t *testing.T) {
	g := newRolloutRig(t, 4, 1)
	log := filepath.Join(t.TempDir(), "power.log")
	for _, m := range g.ms {
		g.f.want(g.f.adm("PATCH", "/machines/"+m.mac, `{"power":"cmd:echo $BTY_MAC >> `+log+`"}`), 200, "power")
	}
	cycled := func() []string {
		b, _ := os.ReadFile(log)
		return strings.Fields(string(b))
	}
	ro := g.start(2, 0)
	waitFor(t, "two power cycles", func() bool { return len(cycled()) == 2 })
	first := cycled()
	var m *simMachine
	for _, x := range g.ms {
		if x.mac == first[0] {
			m = x
		}
	}
	if what := g.step(m); !strings.HasPrefix(what, "flashing "+newImg) {
		t.Fatalf("the first machine cycled: %s", what)
	}
	g.step(m) // done: a slot frees, the next machine is cycled
	waitFor(t, "a third power cycle", func() bool { return len(cycled()) == 3 })
	if ro := g.rollout(ro.ID); ro.Counts[wire.MemberFlashing] != 2 || ro.Counts[wire.MemberDone] != 1 {
		t.Errorf("rollout %+v, want 1 done and 2 flashing", ro)
	}
	if got := cycled(); len(got) != 3 || got[2] == first[0] || got[2] == first[1] {
		t.Errorf("power cycles %v", got)
	}
}

// TestRolloutStartErrors: what a start refuses.
func TestRolloutStartErrors(t *testing.T) {
	g := newRolloutRig(t, 2, 1)
	for _, tc := range []struct {
		body string
		code int
	}{
		{`{"label":"nobody","image":"` + g.newRef + `","max_parallel":1}`, 422},
		{`{"label":"ci","image":"` + strings.Repeat("a", 64) + `","max_parallel":1}`, 422},
		{`{"label":"ci","image":"` + g.newRef + `","max_parallel":0}`, 422},
		{`{"label":"ci","image":"` + g.newRef + `","max_parallel":1,"max_failures":-1}`, 422},
		{`{"label":"ci","image":"x","max_parallel":1}`, 422},
		{`{"label":"ci","image":"` + g.newRef + `","max_parallel":1,"extra":1}`, 422},
	} {
		if r := g.f.adm("POST", "/rollouts", tc.body); r.code != tc.code || !strings.Contains(r.body, "detail") {
			t.Errorf("POST %s: %d %s, want %d", tc.body, r.code, r.body, tc.code)
		}
	}
	g.f.want(g.f.adm("GET", "/rollouts/99", ""), 404, "unknown rollout")
	g.f.want(g.f.adm("POST", "/rollouts/99/pause", ""), 404, "unknown rollout")
	ro := g.start(1, 0)
	g.f.want(g.f.adm("POST", fmt.Sprintf("/rollouts/%d/explode", ro.ID), ""), 404, "unknown action")
	g.f.want(g.f.adm("POST", fmt.Sprintf("/rollouts/%d/pause", ro.ID), `{"max_parallel":3}`), 422, "limits with pause")
	g.f.want(g.f.do("GET", "/rollouts", ""), 401, "without a token")
}
