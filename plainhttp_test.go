package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"bty/catalog/catalogtest"
	"bty/netboot/netboottest"
)

// --plain-http reaches every mode of one run: main builds one resolver and
// hands it to headless mode, the wizard and server-driven mode. A registry
// is plain HTTP without the flag only on loopback, so these tests put one
// where it is not: bty runs in a network namespace the test makes, and
// reaches the registry (on the test's loopback) at the namespace's own
// address 10.77.0.1, through a relay.

// lanRegistry is a registry reached at an address that is not loopback from
// inside lan: its host:port there.
func lanRegistry(t *testing.T, lan *netboottest.LAN, reg *catalogtest.Registry) string {
	t.Helper()
	var ln net.Listener
	if err := lan.Do(func() (err error) {
		ln, err = net.Listen("tcp", netboottest.BtyAddr+":0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				// Dialled from this goroutine's thread: the test's namespace.
				up, err := net.Dial("tcp", reg.Host)
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	return ln.Addr().String()
}

// TestWizardPlainHTTPTmux: with --plain-http the wizard lists a catalog kept
// in a plain-HTTP registry that is not on loopback and flashes its image
// from there; without it, it says why the catalog is not listed. (The wizard
// once built resolvers of its own and dropped the flag.)
func TestWizardPlainHTTPTmux(t *testing.T) {
	requireTool(t, "tmux")
	lan := netboottest.New(t)
	reg := catalogtest.StartRegistry(t)
	host := lanRegistry(t, lan, reg)
	data := randomBytes(t, 1<<20+4096)
	reg.Push(t, "bty/lab-disk", "1", catalogtest.Layer{MediaType: "application/vnd.bty.disk", Title: "lab-disk.img", Data: data})
	toml := fmt.Sprintf("version = 1\n\n[[images]]\nname = \"lab-disk.img\"\nsrc = \"oras://%s/bty/lab-disk:1\"\n", host)
	reg.Push(t, "bty/catalog", "v1", catalogtest.Layer{MediaType: "application/toml", Title: "catalog.toml", Data: []byte(toml)})
	cat := "oras://" + host + "/bty/catalog:v1"
	target := filepath.Join(t.TempDir(), "out.img")
	wizard := func(t *testing.T, flags string) *pane {
		return startPane(t, 100, 24, fmt.Sprintf("ip netns exec %s env -u BTY_LIVE BTY_IMAGE_ROOT=%s BTY_DEFAULT_CATALOG=none TERM=xterm-256color %s --no-reboot %s --catalog %s --disk %s",
			lan.NS, shellQuote(t.TempDir()), shellQuote(btyBin), flags, cat, shellQuote(target)))
	}

	t.Run("without --plain-http", func(t *testing.T) {
		p := wizard(t, "")
		s := p.waitFor("its images are not listed")
		if !strings.Contains(flat(s), "HTTPS") || strings.Contains(s, "lab-disk.img") {
			t.Errorf("without --plain-http the registry at %s spoke HTTPS and the catalog failed, but the screen shows:\n%s", host, s)
		}
		p.keys("q")
		p.waitFor("exit=0")
	})
	t.Run("with --plain-http", func(t *testing.T) {
		p := wizard(t, "--plain-http")
		s := p.waitFor("Choose an image", "lab-disk.img")
		if strings.Contains(s, "not listed") {
			t.Errorf("the catalog has a banner:\n%s", s)
		}
		p.keys("Enter")
		p.waitFor("Flash it? [y/N]")
		p.keys("y")
		p.waitFor("Done: lab-disk.img is on")
		if got, err := os.ReadFile(target); err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s after the flash: %v, %s", target, err, firstDiff(got, data))
		}
		p.keys("q")
		p.waitFor("exit=0")
	})
}

// TestPlainHTTPHeadlessAndServerMode: --plain-http reaches headless mode and
// the plan of server-driven mode: both flash an image from a plain-HTTP
// registry that is not on loopback. (Server-driven mode once resolved the
// plan's image with a resolver of its own, which spoke HTTPS there.)
func TestPlainHTTPHeadlessAndServerMode(t *testing.T) {
	requireRoot(t)
	lan := netboottest.New(t)
	reg := catalogtest.StartRegistry(t)
	host := lanRegistry(t, lan, reg)
	data := randomBytes(t, 1<<20+4096)
	reg.Push(t, "bty/lab-disk", "1", catalogtest.Layer{MediaType: "application/vnd.bty.disk", Title: "lab-disk.img", Data: data})
	image := "oras://" + host + "/bty/lab-disk:1"
	dev := newLoop(t, 4<<20, 512)
	run := udevSerials(t, map[string]string{dev: "BTY-PLAIN-1"})
	plan, _ := json.Marshal(map[string]string{"mode": "flash", "image": image, "target_disk_serial": "BTY-PLAIN-1", "name": "lab-disk.img", "format": "img"})
	const mac = "52:54:00:00:01:01"
	srv := &pxeServer{plans: map[string]string{mac: string(plan)}}
	var ln net.Listener
	if err := lan.Do(func() (err error) {
		ln, err = net.Listen("tcp", netboottest.BtyAddr+":0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	server := "http://" + ln.Addr().String()

	// bty runs inside the namespace, where the registry is not on loopback.
	bty := func(t *testing.T, args ...string) result {
		t.Helper()
		return runCmdUnder(t, inNetns(lan.NS), []string{"BTY_RUNDIR=" + run, "BTY_CMDLINE=/nonexistent", "BTY_IMAGE_ROOT=/nonexistent"}, nil, args...)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"headless", []string{"--image", image, "--disk", dev, "--yes"}},
		{"server mode", []string{"--server", server, "--mac", mac, "--no-reboot"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sh(t, "head -c 4M /dev/zero > "+dev)
			if r := bty(t, tc.args...); r.code != exitSource || !strings.Contains(r.stderr, "HTTPS") {
				t.Errorf("without --plain-http: exit %d\n%s\nwant exit %d: the registry at %s is not on loopback, so bty speaks HTTPS to it", r.code, r.stderr, exitSource, host)
			}
			if r := bty(t, append(tc.args, "--plain-http")...); r.code != 0 {
				t.Errorf("with --plain-http: exit %d, want 0\n%s", r.code, r.stderr)
			}
			if got := readDev(t, dev, len(data)); !bytes.Equal(got, data) {
				t.Errorf("%s after the flash with --plain-http: %s", dev, firstDiff(got, data))
			}
		})
	}
}
