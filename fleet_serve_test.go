package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"bty/internal/pgtest"
	"bty/internal/testproc"
	"bty/server/store"
	"bty/wire"
)

// fleetProc is a `bty serve --state` process on loopback, or in a network
// namespace.
type fleetProc struct {
	t     *testing.T
	under []string // the command that runs the server and bty fleet (inNetns); nil for none
	cmd   *exec.Cmd
	url   string // http://127.0.0.1:PORT
	state string
	token string
	mu    sync.Mutex
	log   bytes.Buffer
	done  chan struct{}
}

var fleetAddrRE = regexp.MustCompile(`fleet server at (http://[0-9.:]+)/`)

// startFleet runs bty serve --images images --state state [extra...] and
// waits until it listens. listen is the address ("127.0.0.1:0" for any port).
// A state from fleetState that is a database URL gets its --secrets.
func startFleet(t *testing.T, images, state, listen string, extra ...string) *fleetProc {
	t.Helper()
	return startFleetUnder(t, nil, images, state, listen, extra...)
}

// startFleetUnder is startFleet run by the command under (inNetns).
func startFleetUnder(t *testing.T, under []string, images, state, listen string, extra ...string) *fleetProc {
	t.Helper()
	p := &fleetProc{t: t, under: under, state: state, done: make(chan struct{})}
	secrets := state
	if store.IsURL(state) {
		secrets = fleetSecrets[state]
		extra = append([]string{"--secrets", secrets}, extra...)
	}
	args := append([]string{"serve", "--images", images, "--state", state, "--listen", listen}, extra...)
	p.cmd = btyCommand(context.Background(), under, args...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	found := make(chan string, 1)
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if m := fleetAddrRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		p.cmd.Wait()
	}()
	t.Cleanup(func() {
		// SIGTERM, so that bty serve --pxe removes its TFTP root in /tmp.
		testproc.Stop(p.cmd.Process, syscall.SIGTERM, p.done, 10*time.Second)
		if t.Failed() {
			t.Logf("bty serve's log (tail):\n%s", tail(p.logText(), 4000))
		}
	})
	select {
	case p.url = <-found:
	case <-p.done:
		t.Fatalf("bty serve exited:\n%s", p.logText())
	case <-time.After(2 * time.Minute):
		t.Fatalf("bty serve did not start:\n%s", p.logText())
	}
	b, err := os.ReadFile(filepath.Join(secrets, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	p.token = strings.TrimSpace(string(b))
	return p
}

// fleetSecrets is the --secrets directory of each database URL fleetState made.
var fleetSecrets = map[string]string{}

// fleetStores runs fn as a subtest per store: a state directory (SQLite),
// and a new PostgreSQL database (skipped when PostgreSQL is missing).
func fleetStores(t *testing.T, fn func(t *testing.T, state string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, filepath.Join(t.TempDir(), "state")) })
	t.Run("postgres", func(t *testing.T) { fn(t, fleetPostgres(t)) })
}

// fleetPostgres returns the URL of a new PostgreSQL database, with a
// --secrets directory for the servers that share it.
func fleetPostgres(t *testing.T) string {
	dsn := pgtest.DSN(t)
	fleetSecrets[dsn] = t.TempDir()
	return dsn
}

func (p *fleetProc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// kill ends the server with SIGKILL and waits for it.
func (p *fleetProc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// fleet runs bty fleet against the server.
func (p *fleetProc) fleet(args ...string) result {
	p.t.Helper()
	return runCmdUnder(p.t, p.under, []string{"BTY_SERVER=" + p.url, "BTY_TOKEN=" + p.token}, nil, append([]string{"fleet"}, args...)...)
}

// fleetImages makes an image directory with one gzip image and a boot
// directory with stand-in netboot files; it returns them and the image's
// sha256.
func fleetImages(t *testing.T) (images, boot, sum string) {
	dir := t.TempDir()
	images, boot = filepath.Join(dir, "images"), filepath.Join(dir, "boot")
	os.MkdirAll(images, 0o755)
	os.MkdirAll(boot, 0o755)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(bytes.Repeat([]byte("fleet"), 4096))
	zw.Close()
	writeFile(t, filepath.Join(images, "disk.img.gz"), gz.Bytes())
	writeFile(t, filepath.Join(boot, "vmlinuz"), []byte("kernel"))
	writeFile(t, filepath.Join(boot, "initrd.img"), []byte("initrd"))
	h := sha256.Sum256(gz.Bytes())
	return images, boot, hex.EncodeToString(h[:])
}

// TestFleetCLI: bty fleet against a real bty serve --state: set by name and
// by label, ls and show (tables and JSON), reflash --wait that times out
// (124) on a machine that never boots, tokens, rm, events; bad input exits 2.
func TestFleetCLI(t *testing.T) { fleetStores(t, testFleetCLI) }

func testFleetCLI(t *testing.T, state string) {
	images, boot, sum := fleetImages(t)
	srv := startFleet(t, images, state, "127.0.0.1:0", "--boot", boot)
	mac := "52:54:00:aa:bb:01"
	if r := srv.fleet("set", strings.ToUpper(mac), "--image", "disk.img.gz", "--disk", "serial:SER9", "--mode", "bty-flash-once", "--label", "ci", "--power", "cmd:true"); r.code != 0 {
		t.Fatalf("fleet set = %d: %s", r.code, r.stderr)
	}
	r := srv.fleet("ls")
	if r.code != 0 || !strings.Contains(r.stdout, mac) || !strings.Contains(r.stdout, "disk.img.gz") || !strings.Contains(r.stdout, "stale") {
		t.Errorf("fleet ls = %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = srv.fleet("ls", "--json")
	var ms []wire.Machine
	if err := json.Unmarshal([]byte(r.stdout), &ms); err != nil || len(ms) != 1 || ms[0].Image == nil || ms[0].Image.SHA256 != sum {
		t.Errorf("fleet ls --json = %v %s", err, r.stdout)
	}
	if r := srv.fleet("set", "--label", "ci", "--mode", "bty-flash-always"); r.code != 0 || !strings.Contains(r.stdout, "bty-flash-always") {
		t.Errorf("fleet set --label = %d %s %s", r.code, r.stdout, r.stderr)
	}
	r = srv.fleet("reflash", mac, "--wait", "--timeout", "3s")
	if r.code != exitTimeout || !strings.Contains(r.stderr, "timeout") {
		t.Errorf("fleet reflash --wait on a machine that never boots = %d %s, want %d", r.code, r.stderr, exitTimeout)
	}
	if r := srv.fleet("show", mac); r.code != 0 || !strings.Contains(r.stdout, "armed") || !strings.Contains(r.stdout, "reflash") {
		t.Errorf("fleet show = %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = srv.fleet("token", "create", "ci-bot")
	if r.code != 0 || len(strings.TrimSpace(r.stdout)) != 64 {
		t.Fatalf("token create = %d %q %s", r.code, r.stdout, r.stderr)
	}
	bot := strings.TrimSpace(r.stdout)
	if r := runBtyEnv(t, []string{"BTY_SERVER=" + srv.url, "BTY_TOKEN=" + bot}, "fleet", "ls"); r.code != 0 {
		t.Errorf("ls with the new token = %d %s", r.code, r.stderr)
	}
	if r := srv.fleet("token", "revoke", "ci-bot"); r.code != 0 {
		t.Errorf("token revoke = %d %s", r.code, r.stderr)
	}
	if r := runBtyEnv(t, []string{"BTY_SERVER=" + srv.url, "BTY_TOKEN=" + bot}, "fleet", "ls"); r.code != exitUsage || !strings.Contains(r.stderr, "401") {
		t.Errorf("ls with a revoked token = %d %s, want 2 and the 401", r.code, r.stderr)
	}
	for _, bad := range [][]string{{"set", mac, "--image", "nope"}, {"set", "nomac", "--mode", "bty-tui"}, {"set", mac, "--disk", "/dev/sda"}, {"show"}, {"frob"}} {
		if r := srv.fleet(bad...); r.code != exitUsage || strings.Count(strings.TrimSpace(r.stderr), "\n") > 20 {
			t.Errorf("fleet %q = %d %s, want 2", bad, r.code, r.stderr)
		}
	}
	if r := srv.fleet("events", "--machine", mac, "--json"); r.code != 0 || !strings.Contains(r.stdout, `"machine.reflash_requested"`) {
		t.Errorf("fleet events = %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := srv.fleet("rm", mac); r.code != 0 {
		t.Errorf("fleet rm = %d %s", r.code, r.stderr)
	}
	if r := srv.fleet("show", mac); r.code != exitUsage || !strings.Contains(r.stderr, "404") {
		t.Errorf("show after rm = %d %s", r.code, r.stderr)
	}
}

// loadClient is one simulated machine's HTTP client.
var loadClient = &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}}

// call does one request and returns the status and body; err means no answer.
func call(method, url, token, body string) (int, string, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := loadClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// machineLife is one simulated machine's life: first contact (discovered as
// bty-inventory), its inventory, its binding by the operator, then a flash
// with progress and done. Its requests go to the servers of urls in turn. It
// reports each acknowledged status (plan id) and stops at the first request
// without an answer (a server died).
func machineLife(urls []string, admin, mac, ref, sum string, acked func(mac string, planID int64)) error {
	hyp := wire.HexHyp(mac)
	k := 0
	step := func(what string, want int, method, path, token, body string) (string, error) {
		url := urls[k%len(urls)] + path
		k++
		code, b, err := call(method, url, token, body)
		if err != nil {
			return "", errDied
		}
		if code != want {
			return "", fmt.Errorf("%s %s: %s: %d %s, want %d", mac, what, url, code, b, want)
		}
		return b, nil
	}
	boot := func() (string, error) {
		b, err := step("bootstrap", 200, "GET", "/pxe-bootstrap.ipxe", "", "")
		if err != nil {
			return "", err
		}
		chain := b[strings.Index(b, "/pxe/${mac:hexhyp}"):]
		chain = strings.TrimSpace(strings.Replace(chain, "${mac:hexhyp}", hyp, 1))
		return step("pxe", 200, "GET", chain, "", "")
	}
	plan := func(want wire.Mode) (wire.Plan, error) {
		b, err := step("plan", 200, "GET", "/pxe/"+mac+"/plan", "", "")
		if err != nil {
			return wire.Plan{}, err
		}
		p, err := wire.ParsePlan([]byte(b))
		if err == nil && (p.Mode != want || p.AgentToken == "" || p.PlanID == 0) {
			err = fmt.Errorf("%s: plan %s, want %s with a token", mac, b, want)
		}
		return p, err
	}
	s, err := boot()
	if err != nil {
		return err
	}
	if !strings.Contains(s, "bty.mac="+mac) {
		return fmt.Errorf("%s: first contact got %q, want the live environment", mac, s)
	}
	if _, err := step("kernel", 200, "HEAD", "/boot/vmlinuz?mac="+mac, "", ""); err != nil {
		return err
	}
	p, err := plan(wire.ModeInventory)
	if err != nil {
		return err
	}
	inv := `{"disks":[{"path":"/dev/vda","size":"16M","serial":"SER-` + hyp + `","tran":"virtio"}],"lshw":{"id":"` + hyp + `"}}`
	if _, err := step("inventory", 204, "POST", "/pxe/"+mac+"/inventory", p.AgentToken, inv); err != nil {
		return err
	}
	if _, err := step("bind", 200, "PATCH", "/machines/"+mac, admin, `{"bty_image_ref":"`+ref+`","boot_mode":"bty-flash-once","target_disk_serial":"SER-`+hyp+`"}`); err != nil {
		return err
	}
	if s, err = boot(); err != nil {
		return err
	}
	if !strings.Contains(s, "flash disk.img.gz") {
		return fmt.Errorf("%s: after the binding got %q, want the flash", mac, s)
	}
	if p, err = plan(wire.ModeFlash); err != nil {
		return err
	}
	if p.DiskImageSHA != sum {
		return fmt.Errorf("%s: plan digest %s, want %s", mac, p.DiskImageSHA, sum)
	}
	if _, err := step("progress", 204, "POST", "/pxe/"+mac+"/progress", p.AgentToken, fmt.Sprintf(`{"plan_id":%d,"phase":"writing","bytes_written":0,"bytes_total":20480}`, p.PlanID)); err != nil {
		return err
	}
	if _, err := step("status", 204, "POST", "/pxe/"+mac+"/status", p.AgentToken, fmt.Sprintf(`{"status":"done","plan_id":%d,"sha256":"%s","bytes_written":20480}`, p.PlanID, sum)); err != nil {
		return err
	}
	acked(mac, p.PlanID)
	return nil
}

var errDied = fmt.Errorf("no answer")

// TestFleetLoad: 200 simulated machines at once, each through discovery,
// inventory, binding, plan, progress and status, every answer checked; then
// 200 more, with the server killed (SIGKILL) in the middle: the database is
// consistent and every acknowledged status is there after a restart.
func TestFleetLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test: skipped with -short")
	}
	// On SQLite: TestFleetTwoServers is this test on PostgreSQL, with a second
	// server that carries on.
	testFleetLoad(t, filepath.Join(t.TempDir(), "state"))
}

func testFleetLoad(t *testing.T, state string) {
	images, boot, sum := fleetImages(t)
	srv := startFleet(t, images, state, "127.0.0.1:0", "--boot", boot)
	var imgs []wire.ImageEntry
	_, b, _ := call("GET", srv.url+"/images", "", "")
	json.Unmarshal([]byte(b), &imgs)
	if len(imgs) != 1 {
		t.Fatalf("/images = %s", b)
	}
	ref := imgs[0].Ref

	var mu sync.Mutex
	acked := map[string]int64{}
	ack := func(mac string, id int64) { mu.Lock(); acked[mac] = id; mu.Unlock() }
	run := func(prefix byte, n int, onAck func()) []error {
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				mac := fmt.Sprintf("02:00:00:%02x:%02x:%02x", prefix, i/256, i%256)
				errs[i] = machineLife([]string{srv.url}, srv.token, mac, ref, sum, func(mac string, id int64) { ack(mac, id); onAck() })
			}()
		}
		wg.Wait()
		return errs
	}

	start := time.Now()
	for _, err := range run(1, 200, func() {}) {
		if err != nil {
			t.Error(err)
		}
	}
	t.Logf("200 machines through discovery, inventory and a flash in %s", time.Since(start).Round(time.Millisecond))
	if len(acked) != 200 {
		t.Fatalf("%d statuses acknowledged, want 200", len(acked))
	}

	// Round two: kill the server after the 60th acknowledged status.
	var once sync.Once
	var n int
	var nmu sync.Mutex
	errs := run(2, 200, func() {
		nmu.Lock()
		n++
		kill := n == 60
		nmu.Unlock()
		if kill {
			once.Do(srv.kill)
		}
	})
	died := 0
	for _, err := range errs {
		switch {
		case err == errDied:
			died++
		case err != nil:
			t.Error(err)
		}
	}
	t.Logf("killed after 60 acknowledged statuses of round two; %d machines lost the server, %d statuses acknowledged in all", died, len(acked))
	if died == 0 {
		t.Errorf("no machine saw the server die: the kill came too late to test anything")
	}

	st, err := store.OpenSQLite(filepath.Join(state, "fleet.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := st.IntegrityCheck(t.Context()); v != "ok" {
		t.Errorf("integrity_check after SIGKILL = %q, %v", v, err)
	}
	st.Close()

	srv2 := startFleet(t, images, state, "127.0.0.1:0", "--boot", boot)
	var ms []wire.Machine
	if _, b, err = call("GET", srv2.url+"/machines", srv2.token, ""); err == nil {
		err = json.Unmarshal([]byte(b), &ms)
	}
	if err != nil {
		t.Fatalf("machines after the restart: %v %s", err, b)
	}
	byMAC := map[string]wire.Machine{}
	for _, m := range ms {
		byMAC[m.MAC] = m
	}
	lost := 0
	for mac, id := range acked {
		m, ok := byMAC[mac]
		if !ok || m.Disk == nil || m.Disk.PlanID != id || m.Disk.SHA256 != sum || m.Cycle == nil || m.Cycle.State != wire.CycleDone {
			lost++
			if lost < 5 {
				t.Errorf("acknowledged status of %s (plan %d) lost: %+v", mac, id, m.Disk)
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged statuses lost", lost, len(acked))
	}
}

// TestFleetPassword: bty serve makes the web UI's password on first start
// (admin.password, 0600, in STATE or --secrets), and bty fleet password
// replaces it: the old one no longer logs in, the new one does, and the
// stale file is gone.
func TestFleetPassword(t *testing.T) { fleetStores(t, testFleetPassword) }

func testFleetPassword(t *testing.T, state string) {
	images, _, _ := fleetImages(t)
	srv := startFleet(t, images, state, "127.0.0.1:0")
	secrets := state
	if store.IsURL(state) {
		secrets = fleetSecrets[state]
	}
	file := filepath.Join(secrets, "admin.password")
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the first-start password file: %v, mode %v; want it, 0600", err, fi)
	}
	b, _ := os.ReadFile(file)
	first := strings.TrimSpace(string(b))
	login := func(pw string) int {
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		res, err := c.PostForm(srv.url+"/ui/login", url.Values{"password": {pw}})
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := login(first); code != http.StatusSeeOther {
		t.Fatalf("log in with the first-start password: %d, want 303", code)
	}
	env := []string{"BTY_SERVER=" + srv.url, "BTY_TOKEN=" + srv.token}
	if r := runCmd(t, env, strings.NewReader("short\n"), "fleet", "password"); r.code != exitUsage || !strings.Contains(r.stderr, "shorter than 8") {
		t.Errorf("fleet password with a short one = %d %s, want %d", r.code, r.stderr, exitUsage)
	}
	if r := runCmd(t, env, strings.NewReader("the new password\n"), "fleet", "password"); r.code != 0 {
		t.Fatalf("fleet password = %d %s", r.code, r.stderr)
	}
	if code := login(first); code != http.StatusOK {
		t.Errorf("log in with the old password: %d, want 200 (the login page again)", code)
	}
	if code := login("the new password"); code != http.StatusSeeOther {
		t.Errorf("log in with the new password: %d, want 303", code)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("the stale first-start password file is still there (%v)", err)
	}
}
