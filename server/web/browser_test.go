package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"bty/wire"
)

// The browser tests drive the real UI in a real Chromium (headless), one
// browser for the whole test. With BTY_SCREENSHOTS=1 they also write the
// screenshots of docs/screenshots/ (at 1280x800, the machine list also at
// 390x844); a normal run writes nothing.

// stepTimeout bounds each step: generous, as the build machine is shared.
const stepTimeout = 60 * time.Second

type browser struct {
	t     *testing.T
	ctx   context.Context
	shots string // where screenshots go; "" for none
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Skip("chromium is not installed (apt-get install chromium): the browser tests need it")
	}
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 800),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-extensions", true), chromedp.Flag("lang", "en-US")}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	b := &browser{t: t, ctx: ctx}
	if os.Getenv("BTY_SCREENSHOTS") == "1" {
		b.shots = filepath.Join("..", "..", "docs", "screenshots")
		os.MkdirAll(b.shots, 0o755)
	}
	b.do("set the viewport", chromedp.EmulateViewport(1280, 800))
	return b
}

// do runs steps, failing the test with what when one fails.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression.
func eval[T any](b *browser, js string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// text returns the text of the first element that matches sel ("" when none).
func (b *browser) text(sel string) string {
	b.t.Helper()
	return eval[string](b, fmt.Sprintf(`(document.querySelector(%q) || {}).innerText || ""`, sel))
}

// waitText waits until the element that matches sel holds want, without
// navigating: what the page shows by itself.
func (b *browser) waitText(sel, want string) {
	b.t.Helper()
	js := fmt.Sprintf(`((document.querySelector(%q) || {}).innerText || "").includes(%q)`, sel, want)
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(stepTimeout))); err != nil {
		b.t.Fatalf("%s never showed %q (it shows %q): %v", sel, want, b.text(sel), err)
	}
}

// open navigates to a page of the UI and waits for its main part.
func (b *browser) open(h *harness, path string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(h.ts.URL+path), chromedp.WaitVisible(chromedp.CSS("main")))
}

// submit clicks a form's button and waits for the page it leads to.
func (b *browser) submit(button string) {
	b.t.Helper()
	b.do("mark the page", chromedp.Evaluate[chromedp.Void](`document.body.dataset.old = "1"`))
	b.do("click "+button, chromedp.Click(chromedp.CSS(button)))
	b.waitNavigated("the page after " + button)
}

// waitNavigated waits until the page marked by submit was replaced by a
// loaded one (a Poll does not survive the navigation: ask again until then).
func (b *browser) waitNavigated(what string) {
	b.t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		done, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.readyState === "complete" && !document.body.dataset.old`))
		cancel()
		if err == nil && done {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.t.Fatalf("%s never loaded", what)
}

// shot saves a screenshot of the viewport as docs/screenshots/name.png
// (with BTY_SCREENSHOTS=1 only), at width x height.
func (b *browser) shot(name string, width, height int64) {
	b.t.Helper()
	if b.shots == "" {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if width != 1280 {
		b.do("narrow the viewport", chromedp.EmulateViewport(width, height, chromedp.EmulateMobile, chromedp.EmulateTouch))
		defer b.do("widen the viewport", chromedp.EmulateViewport(1280, 800))
		b.do("let it lay out", chromedp.Sleep(200*time.Millisecond))
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) darkMode(on bool) {
	b.t.Helper()
	scheme := "light"
	if on {
		scheme = "dark"
	}
	b.do("prefers-color-scheme: "+scheme, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
		return err
	}))
}

// populate registers a few more machines in other states, so that the
// pages (and their screenshots) show a fleet: two flashed, one only
// discovered, one quarantined after three failed flashes.
func populate(h *harness) {
	h.t.Helper()
	bind := func(mac, mode, labels string) *machineSim {
		m := h.newMachine(mac)
		m.boot()
		m.live()
		m.inventory()
		h.api("PUT", "/machines/"+mac, fmt.Sprintf(`{"bty_image_ref":%q,"boot_mode":%q,"target_disk_serial":"S5GXNX0T","labels":[%s],"power":"wol"}`, h.ref, mode, labels))
		return m
	}
	for _, mac := range []string{"52:54:00:aa:00:01", "52:54:00:aa:00:02"} {
		m := bind(mac, wire.BootFlashOnce, `"ci","rack1"`)
		m.boot()
		m.live()
		m.progress(time.Second, 0, h.size)
		m.progress(4*time.Second, h.size, h.size)
		m.done(h.size)
	}
	h.newMachine("52:54:00:aa:00:03").boot()
	m := bind("52:54:00:aa:00:04", wire.BootFlashAlways, `"ci","rack2"`)
	for i := 0; i < 3; i++ {
		m.boot()
		m.live()
		m.failed("source: GET image: connection reset by peer")
	}
}

// TestBrowser drives the UI as a person does: log in, see a machine register
// by its first PXE request, bind an image and a disk from its inventory,
// press "Reflash now", watch the row follow the flash live, see a failed
// flash on the dashboard and acknowledge it, have forged forms refused, and
// log out.
func TestBrowser(t *testing.T) {
	b := newBrowser(t)
	h := newHarness(t)
	const mac = "52:54:00:12:34:56"
	row := "#m-" + wire.HexHyp(mac)

	// Log in: / sends the browser to the login page.
	b.open(h, "/")
	if loc := eval[string](b, "location.pathname"); loc != "/ui/login" {
		t.Fatalf("/ led to %s, want /ui/login", loc)
	}
	b.shot("login", 1280, 800)
	b.do("type the password", chromedp.SendKeys(chromedp.ID("password"), h.password))
	b.submit("form button[type=submit]")
	if loc := eval[string](b, "location.pathname"); loc != "/ui/dashboard" {
		t.Fatalf("the login led to %s, want /ui/dashboard", loc)
	}

	// A machine registers by its first PXE request, and reports its disks.
	populate(h)
	m := h.newMachine(mac)
	m.boot()
	b.open(h, "/ui/machines")
	b.waitText(row, "bty-inventory")
	if p := m.live(); p.Mode != wire.ModeInventory {
		t.Fatalf("the first plan is %s, want inventory", p.Mode)
	}
	m.inventory()

	// Bind an image and a disk of its inventory.
	b.open(h, "/ui/machines/"+mac)
	b.waitText("#disk", "S5GXNX0T")
	b.do("bind",
		chromedp.SetValue(chromedp.ID("image"), h.ref),
		chromedp.SetValue(chromedp.ID("disk"), "S5GXNX0T"),
		chromedp.SetValue(chromedp.ID("mode"), wire.BootFlashOnce),
		chromedp.SetValue(chromedp.ID("labels"), "ci, rack1"))
	b.submit("#save")
	b.waitText("main", "Saved.")
	got := h.machine(mac)
	if got.BtyImageRef == nil || *got.BtyImageRef != h.ref || got.TargetDiskSerial == nil || *got.TargetDiskSerial != "S5GXNX0T" ||
		got.BootMode != wire.BootFlashOnce || strings.Join(got.Labels, ",") != "ci,rack1" {
		t.Fatalf("after Save the machine is %+v, want the image, disk S5GXNX0T, bty-flash-once, labels ci, rack1", got)
	}

	// Reflash now.
	b.do("give a reason", chromedp.SendKeys(chromedp.ID("reason"), "CI job 4711 teardown"))
	b.submit("#reflash")
	b.waitText("main", "Reflash armed")
	if st := h.machine(mac).State; st != wire.StateArmed {
		t.Fatalf("after Reflash now the machine is %s, want armed", st)
	}
	if evs := h.events("machine.reflash_requested"); len(evs) != 1 || evs[0].Actor != "ui:admin" || !strings.Contains(evs[0].Summary, "CI job 4711") {
		t.Fatalf("reflash events = %+v, want one by ui:admin with the reason", evs)
	}

	// The row follows the flash live, without a reload.
	b.open(h, "/ui/machines")
	b.waitText("#live", "Live")
	b.do("mark the page", chromedp.Evaluate[chromedp.Void](`window.btyNoReload = "still here"`))
	b.waitText(row, "armed")
	m.boot()
	b.waitText(row, "booting the live environment")
	m.live()
	total := int64(8e9)
	m.progress(time.Second, 0, total)
	m.progress(10*time.Second, total/4, total)
	b.waitText(row, "25%")
	m.progress(10*time.Second, total*3/5, total)
	b.waitText(row, "60%")
	// 60% of 8 GB in 20 s: 240 MB/s, the rest (3.2 GB) in 13 s.
	if txt := b.text(row); !strings.Contains(txt, "240 MB/s") || !strings.Contains(txt, "13s left") {
		t.Errorf("the flashing row shows %q, want its rate 240 MB/s and 13s left", txt)
	}
	b.shot("machines", 1280, 800)
	b.shot("machines-phone", 390, 844)
	b.open(h, "/ui/dashboard")
	b.waitText("#flashing", "60%")
	b.shot("dashboard", 1280, 800)
	b.darkMode(true)
	b.shot("dashboard-dark", 1280, 800)
	b.darkMode(false)
	b.open(h, "/ui/machines/"+mac)
	b.waitText("#machine-status", "60%")
	b.shot("machine", 1280, 800)
	b.open(h, "/ui/machines")
	b.do("mark the page", chromedp.Evaluate[chromedp.Void](`window.btyNoReload = "still here"`))
	m.progress(8*time.Second, total, total)
	b.waitText(row, "100%")
	m.done(total)
	b.waitText(row+" .statecell", "current")
	b.waitText(row, "done")
	if v := eval[string](b, `window.btyNoReload || "reloaded"`); v != "still here" {
		t.Errorf("the machine list was reloaded (%s): it should have changed in place", v)
	}

	// A failed flash shows on the dashboard, and can be acknowledged.
	b.open(h, "/ui/dashboard")
	h.api("POST", "/machines/"+mac+"/reflash", `{"reason":"nightly"}`)
	m.boot()
	m.live()
	m.failed("integrity: sha256 of the written image differs")
	b.waitText("#attention", "sha256 of the written image differs")
	failed := h.events("machine.flash_failed")[0]
	ack := "#ack-" + strconv.FormatInt(failed.ID, 10)
	b.submit(ack)
	b.waitText("main", "Acknowledged.")
	if strings.Contains(b.text("#attention"), "sha256 of the written image differs") {
		t.Error("the acknowledged failure is still on the dashboard")
	}
	if e := h.events("machine.flash_failed")[0]; !e.Acknowledged {
		t.Errorf("event %d is not acknowledged after the click", e.ID)
	}

	// Forms without the CSRF defence are refused: a page of another origin
	// that posts the form (even with the right token), and a form on this
	// origin without the token.
	b.open(h, "/ui/machines/"+mac)
	token := eval[string](b, `document.querySelector("input[name=csrf]").value`)
	before := len(h.events("machine.reflash_requested"))
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><form id="f" method="post" action="%s/ui/machines/%s/reflash"><input name="csrf" value="%s"><input name="reason" value="forged"></form><script>document.getElementById("f").submit()</script>`, h.ts.URL, mac, token)
	}))
	defer evil.Close()
	b.do("mark the page", chromedp.Evaluate[chromedp.Void](`document.body.dataset.old = "1"`))
	b.do("visit another site's page", chromedp.Navigate(evil.URL))
	b.waitNavigated("the forged form's answer")
	b.waitText("main", "cross-origin")
	b.open(h, "/ui/machines/"+mac)
	b.do("post a form without the token", chromedp.Evaluate[chromedp.Void](`(() => {
		const f = document.createElement("form"); f.method = "post"; f.action = location.pathname + "/reflash";
		const r = document.createElement("input"); r.name = "reason"; r.value = "no token"; f.append(r);
		document.body.dataset.old = "1"; document.body.append(f); f.submit(); })()`))
	b.waitNavigated("the tokenless form's answer")
	b.waitText("main", "no valid CSRF token")
	if n := len(h.events("machine.reflash_requested")); n != before {
		t.Errorf("%d reflash requests after the forged forms, want %d", n, before)
	}

	// The other pages.
	for _, p := range []struct{ path, h1, shot string }{{"/ui/images", "Images", "images"}, {"/ui/events", "Events", "events"}, {"/ui/tokens", "Tokens", "tokens"}} {
		b.open(h, p.path)
		b.waitText("h1", p.h1)
		b.shot(p.shot, 1280, 800)
		if txt := b.text("main"); p.shot == "images" && (!strings.Contains(txt, h.image) || !strings.Contains(txt, mac)) {
			t.Errorf("the images page shows %q, want %s and the machine bound to it, %s", txt, h.image, mac)
		}
	}

	// Log out: the session ends; the pages send the browser to the login.
	b.submit(".logout button")
	if loc := eval[string](b, "location.pathname"); loc != "/ui/login" {
		t.Fatalf("logging out led to %s, want /ui/login", loc)
	}
	b.open(h, "/ui/machines")
	if loc := eval[string](b, "location.pathname"); loc != "/ui/login" {
		t.Errorf("after logging out /ui/machines led to %s, want /ui/login", loc)
	}
}
