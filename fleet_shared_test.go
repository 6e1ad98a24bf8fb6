package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"bty/wire"
)

// TestFleetTwoServers: two bty serve processes on one PostgreSQL database
// share one fleet. A machine registered through one is flashed through both
// (its requests alternate), its status counts once whichever server gets
// it, a reflash armed through one is offered by the other, and reflash
// --wait through one sees the flash done through the other. Then a load
// through both, with one killed (SIGKILL) in the middle: the other answers
// every one of its machines, and no acknowledged status is lost.
func TestFleetTwoServers(t *testing.T) {
	if testing.Short() {
		t.Skip("two servers and a load: skipped with -short")
	}
	images, boot, sum := fleetImages(t)
	state := fleetPostgres(t)
	// One canonical --url: the refs of the servers' own images are the same
	// on both (docs/fleet.md, several servers).
	a := startFleet(t, images, state, "127.0.0.1:0", "--boot", boot, "--url", "http://bty.test:8080")
	b := startFleet(t, images, state, "127.0.0.1:0", "--boot", boot, "--url", "http://bty.test:8080")
	both := []*fleetProc{a, b}

	mac := "52:54:00:bb:00:01"
	if r := a.fleet("set", mac, "--image", "disk.img.gz", "--disk", "serial:SER1", "--mode", "bty-flash-once"); r.code != 0 {
		t.Fatalf("fleet set through A = %d %s", r.code, r.stderr)
	}
	if r := b.fleet("ls"); r.code != 0 || !strings.Contains(r.stdout, mac) || !strings.Contains(r.stdout, "disk.img.gz") {
		t.Fatalf("fleet ls through B = %d:\n%s%s", r.code, r.stdout, r.stderr)
	}

	// One cycle, its requests alternating B, A, B, A: the status counts once,
	// and the same status again through the other server changes nothing.
	cycle := func(first, second *fleetProc) wire.Plan {
		t.Helper()
		_, s, err := call("GET", first.url+"/pxe-bootstrap.ipxe", "", "")
		chain := s[strings.Index(s, "/pxe/${mac:hexhyp}"):]
		chain = strings.TrimSpace(strings.Replace(chain, "${mac:hexhyp}", wire.HexHyp(mac), 1))
		code, script, err2 := call("GET", second.url+chain, "", "")
		if err != nil || err2 != nil || code != 200 || !strings.Contains(script, "flash disk.img.gz") {
			t.Fatalf("boot through %s then %s: %d %q %v %v, want the flash", first.url, second.url, code, script, err, err2)
		}
		if code, _, err := call("HEAD", first.url+"/boot/vmlinuz?mac="+mac, "", ""); code != 200 || err != nil {
			t.Fatalf("kernel: %d %v", code, err)
		}
		code, body, err := call("GET", second.url+"/pxe/"+mac+"/plan", "", "")
		p, perr := wire.ParsePlan([]byte(body))
		if err != nil || perr != nil || code != 200 || p.Mode != wire.ModeFlash || p.AgentToken == "" {
			t.Fatalf("plan: %d %s %v", code, body, err)
		}
		done := fmt.Sprintf(`{"status":"done","plan_id":%d,"sha256":"%s"}`, p.PlanID, sum)
		for _, srv := range []*fleetProc{first, second} {
			if code, body, err := call("POST", srv.url+"/pxe/"+mac+"/status", p.AgentToken, done); code != 204 || err != nil {
				t.Fatalf("status done through %s: %d %s %v", srv.url, code, body, err)
			}
		}
		return p
	}
	p := cycle(b, a)
	for _, srv := range both {
		var evs wire.Events
		_, body, _ := call("GET", srv.url+"/events?kind=machine.flashed&subject_id="+mac, srv.token, "")
		json.Unmarshal([]byte(body), &evs)
		if len(evs.Events) != 1 {
			t.Errorf("machine.flashed events through %s = %s, want one", srv.url, body)
		}
		if r := srv.fleet("show", mac, "--json"); !strings.Contains(r.stdout, `"state": "current"`) && !strings.Contains(r.stdout, `"state":"current"`) {
			t.Errorf("fleet show through %s after the flash = %d %s", srv.url, r.code, r.stdout)
		}
	}

	// reflash --wait through B; the machine boots and reports through A.
	wait := make(chan result, 1)
	go func() { wait <- b.fleet("reflash", mac, "--wait", "--timeout", "5m", "--no-power") }()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var m wire.Machine
		_, body, _ := call("GET", a.url+"/machines/"+mac, a.token, "")
		json.Unmarshal([]byte(body), &m)
		if m.Cycle != nil && m.Cycle.ID > p.PlanID && m.Cycle.State == wire.CycleArmed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reflash through B is not armed as seen through A: %s", body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cycle(a, a)
	if r := <-wait; r.code != 0 {
		t.Errorf("fleet reflash --wait through B, flashed through A = %d %s", r.code, r.stderr)
	}

	// The load: machines 0-49 alternate A and B, 50-99 use B only; A is
	// killed after 20 acknowledged statuses.
	var imgs []wire.ImageEntry
	_, body, _ := call("GET", b.url+"/images", "", "")
	json.Unmarshal([]byte(body), &imgs)
	if len(imgs) != 1 {
		t.Fatalf("/images = %s", body)
	}
	var mu sync.Mutex
	acked := map[string]int64{}
	var once sync.Once
	var wg sync.WaitGroup
	errs := make([]error, 100)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			urls := []string{a.url, b.url}
			if i >= 50 {
				urls = []string{b.url}
			}
			m := fmt.Sprintf("02:00:00:03:00:%02x", i)
			errs[i] = machineLife(urls, b.token, m, imgs[0].Ref, sum, func(m string, id int64) {
				mu.Lock()
				acked[m] = id
				kill := len(acked) == 20
				mu.Unlock()
				if kill {
					once.Do(a.kill)
				}
			})
		}()
	}
	wg.Wait()
	died := 0
	for i, err := range errs {
		switch {
		case err == errDied && i < 50:
			died++
		case err != nil:
			t.Errorf("machine %d: %v", i, err)
		}
	}
	if died == 0 {
		t.Errorf("no machine saw server A die: the kill came too late to test anything")
	}
	t.Logf("A killed after 20 acknowledged statuses; %d machines lost it, %d statuses acknowledged in all", died, len(acked))
	var ms []wire.Machine
	_, body, err := call("GET", b.url+"/machines", b.token, "")
	if err == nil {
		err = json.Unmarshal([]byte(body), &ms)
	}
	if err != nil {
		t.Fatalf("machines through B after the kill: %v %s", err, body)
	}
	byMAC := map[string]wire.Machine{}
	for _, m := range ms {
		byMAC[m.MAC] = m
	}
	for m, id := range acked {
		if got := byMAC[m]; got.Disk == nil || got.Disk.PlanID != id || got.Cycle == nil || got.Cycle.State != wire.CycleDone {
			t.Errorf("acknowledged status of %s (plan %d) lost: %+v", m, id, got.Disk)
		}
	}
}
