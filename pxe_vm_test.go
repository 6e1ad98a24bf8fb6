package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"bty/netboot"
	"bty/netboot/netboottest"
	"bty/wire"
)

// The PXE tests run `bty serve --pxe` on a private segment (netboottest:
// network namespaces, a bridge, dnsmasq as the site's DHCP server giving
// addresses only) and boot real firmware on it under qemu. bty serve runs
// inside the namespace as a process of its own, since its TFTP server opens
// a socket per transfer; bty fleet runs there too.

// pxeAddr is the fleet server as the machines reach it.
var pxeAddr = fmt.Sprintf("%s:%d", netboottest.BtyAddr, netboottest.HTTPPort)

// requirePXE skips unless the segment, dnsmasq, qemu with the NIC's iPXE
// ROM and Debian's iPXE binaries are there.
func requirePXE(t *testing.T) {
	t.Helper()
	netboottest.Require(t, "dnsmasq", "qemu-system-x86_64")
	requireNICROM(t)
	for _, f := range []string{"undionly.kpxe", "ipxe.efi"} {
		if _, err := os.Stat(filepath.Join(netboot.DefaultIPXEDir, f)); err != nil {
			t.Skipf("PXE test: no %s/%s (apt-get install ipxe)", netboot.DefaultIPXEDir, f)
		}
	}
}

// startObserver runs bty serve --pxe --dhcp-observe beside the server, on
// its state, and waits until it listens. Its output is lan.Log("observe").
func startObserver(t *testing.T, lan *netboottest.LAN, state string, extra ...string) {
	t.Helper()
	args := append([]string{"serve", "--state", state, "--pxe", "--interface", netboottest.Bridge, "--dhcp-observe"}, extra...)
	lan.Start(lan.Command(context.Background(), btyBin, args...), "observe")
	if !netboottest.WaitFor(time.Minute, func() bool { return strings.Contains(lan.Log("observe"), "bty serve: observing DHCP") }) {
		t.Fatalf("the observer did not start:\n%s", lan.Log("observe"))
	}
}

// TestVMPXEFlash: the whole cycle on a segment whose DHCP server knows
// nothing of netboot, for the three ways firmware boots from the network,
// three machines at once beside one `bty serve --pxe`: SeaBIOS with the
// NIC's iPXE ROM (bty answers iPXE with the bootstrap URL), OVMF's own PXE
// client (bty answers with ipxe.efi, fetched over bty's TFTP) and OVMF's
// HTTP boot (bty answers with the URL of /boot/ipxe.efi, served from the
// iPXE directory). Each gets its address from dnsmasq, boots the live
// environment that bty media netboot built, flashes the disk named by
// serial, and posts done; the decoy disk is untouched. The cycle's
// timeline starts at bty's DHCP answer. An observer beside the server
// prints what each machine asked and what bty would answer.
func TestVMPXEFlash(t *testing.T) {
	k := requireVM(t)
	requirePXE(t)
	start := time.Now()
	lan := netboottest.New(t)
	lan.StartDHCP()
	imgs := filepath.Join(t.TempDir(), "images")
	os.MkdirAll(imgs, 0o755)
	b, err := os.ReadFile(filepath.Join(k.dir, "images", vmImage))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(imgs, vmImage), b)
	state := filepath.Join(t.TempDir(), "state")
	srv := startFleetUnder(t, inNetns(lan.NS), imgs, state, pxeAddr, "--boot", k.netboot, "--pxe", "--interface", netboottest.Bridge)
	startObserver(t, lan, state)

	base := "http://" + pxeAddr
	type machine struct {
		vm             netboottest.VM
		firmware, file string // bty's first answer
		m              *netboottest.Machine
		target         disk
		decoyUnchanged func()
		done           time.Duration
	}
	machines := []*machine{
		{vm: netboottest.VM{Name: "bios", MAC: "52:54:00:77:00:01"}, firmware: "iPXE", file: base + "/pxe-bootstrap.ipxe"},
		{vm: netboottest.VM{Name: "uefi-pxe", MAC: "52:54:00:77:00:02", UEFI: true}, firmware: "UEFI PXE", file: "ipxe.efi"},
		{vm: netboottest.VM{Name: "uefi-http", MAC: "52:54:00:77:00:03", UEFI: true, HTTPBoot: true}, firmware: "UEFI HTTP boot", file: base + "/boot/ipxe.efi"},
	}
	for _, mc := range machines {
		if r := srv.fleet("set", mc.vm.MAC, "--image", vmImage, "--disk", "serial:"+vmTarget, "--mode", "bty-flash-once"); r.code != 0 {
			t.Fatalf("bty fleet set %s = %d %s", mc.vm.MAC, r.code, r.stderr)
		}
		var decoy disk
		mc.target, decoy, mc.decoyUnchanged = vmDisks(t)
		mc.vm.Args = append(mc.target.args(1), decoy.args(2)...)
	}
	t.Logf("setup took %s", time.Since(start).Round(time.Second))
	start = time.Now()
	for _, mc := range machines {
		mc.m = lan.StartVM(mc.vm)
	}
	show := func(mac string) wire.Machine {
		var shown struct {
			Machine wire.Machine `json:"machine"`
		}
		json.Unmarshal([]byte(srv.fleet("show", mac, "--json").stdout), &shown)
		return shown.Machine
	}
	// Each machine is done when the server recorded the flash; it is then
	// stopped, so that the others get its CPU.
	left := len(machines)
	deadline := start.Add(3 * vmTimeout)
	for left > 0 && time.Now().Before(deadline) {
		time.Sleep(3 * time.Second)
		for _, mc := range machines {
			if mc.done == 0 && show(mc.vm.MAC).Disk != nil {
				mc.done = time.Since(start).Round(time.Second)
				mc.m.Stop()
				left--
				t.Logf("%s: done after %s", mc.vm.Name, mc.done)
			}
		}
	}
	for _, mc := range machines {
		if mc.done == 0 {
			t.Errorf("%s: no done within %s; console (tail):\n%s", mc.vm.Name, 3*vmTimeout, tail(mc.m.Console(), 3000))
		}
	}
	if t.Failed() {
		t.Fatalf("dnsmasq:\n%s", tail(lan.Log("dnsmasq"), 3000))
	}

	log, observed := srv.logText(), lan.Log("observe")
	for _, mc := range machines {
		mac, name := mc.vm.MAC, mc.vm.Name
		m := show(mac)
		c := m.Cycle
		if m.State != wire.StateCurrent || m.Disk.Serial != vmTarget || c == nil || c.State != wire.CycleDone || c.DHCPAt == nil || c.BootedAt == nil || c.WriteStartedAt == nil {
			t.Errorf("%s after the flash: state %s, disk %+v, cycle %+v", name, m.State, m.Disk, c)
		}
		checkTarget(t, k, mc.target)
		mc.decoyUnchanged()
		if r := srv.fleet("show", mac); !strings.Contains(r.stdout, "dhcp +0s, offered +") {
			t.Errorf("%s: bty fleet show has no timeline from bty's DHCP answer:\n%s", name, r.stdout)
		}
		ev := srv.fleet("events", "--machine", mac, "--kind", "netboot.dhcp.offered", "--limit", "100", "--json").stdout
		if !strings.Contains(ev, fmt.Sprintf(`"firmware":"%s"`, mc.firmware)) || !strings.Contains(ev, fmt.Sprintf(`"boot_file":"%s"`, mc.file)) {
			t.Errorf("%s: no netboot.dhcp.offered event for %s with %s:\n%s", name, mc.firmware, mc.file, ev)
		}
		netboottest.WantLines(t, name+" in bty serve's log", netboottest.Lines(log, mac), fmt.Sprintf("bty answers %s: OFFER %s from %s", mc.firmware, mc.file, netboottest.BtyAddr))
		netboottest.WantLines(t, name+" in the observer's output", netboottest.Lines(observed, mac),
			`asked: DISCOVER vendor class "PXEClient`, fmt.Sprintf("bty would answer %s: OFFER %s", mc.firmware, mc.file))
		t.Logf("%s observed:\n%s", name, strings.Join(netboottest.Lines(observed, mac), "\n"))
	}
	// What only one of them does: TFTP, the EFI binary over HTTP.
	st, err := os.Stat(filepath.Join(netboot.DefaultIPXEDir, "ipxe.efi"))
	if err != nil {
		t.Fatal(err)
	}
	netboottest.WantLines(t, "bty serve's log", strings.Split(log, "\n"),
		fmt.Sprintf("tftp: sent ipxe.efi (%d bytes", st.Size()), "GET /boot/ipxe.efi 200")
	netboottest.WantLines(t, "the observer's output", strings.Split(observed, "\n"),
		"server "+netboottest.SiteAddr+" answered: OFFER address 10.77.0.1", "no boot options")
	// The serving bty's answers are not another proxyDHCP's to an observer
	// on the same machine, nor are they a conflict to bty itself.
	for _, l := range strings.Split(observed+log, "\n") {
		if strings.Contains(l, "warning:") {
			t.Errorf("a conflict where there is none: %s", l)
		}
	}
}

// TestVMPXEKnownOnly: with --pxe-known-only, a machine nobody registered
// gets its address from dnsmasq and nothing from bty: it fetches nothing,
// is not registered, and gives up; bty's log and an observer with the same
// flags say why.
func TestVMPXEKnownOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("VM test: skipped with -short")
	}
	t.Parallel()
	requirePXE(t)
	lan := netboottest.New(t)
	lan.StartDHCP()
	imgs, state := t.TempDir(), filepath.Join(t.TempDir(), "state")
	srv := startFleetUnder(t, inNetns(lan.NS), imgs, state, pxeAddr, "--pxe", "--interface", netboottest.Bridge, "--pxe-known-only")
	if r := srv.fleet("set", "52:54:00:77:00:99", "--mode", "ipxe-exit"); r.code != 0 {
		t.Fatalf("bty fleet set = %d %s", r.code, r.stderr)
	}
	startObserver(t, lan, state, "--pxe-known-only")
	start := time.Now()
	stranger := "52:54:00:77:00:04"
	m := lan.StartVM(netboottest.VM{Name: "stranger", MAC: stranger})
	if !netboottest.WaitFor(vmTimeout, func() bool { return strings.Contains(m.Console(), "Nothing to boot") }) {
		t.Fatalf("the machine did not give up; console:\n%s\nbty serve:\n%s", tail(m.Console(), 3000), srv.logText())
	}
	t.Logf("the stranger gave up after %s", time.Since(start).Round(time.Second))
	log := srv.logText()
	netboottest.WantLines(t, "bty serve's log", netboottest.Lines(log, stranger), "bty does not answer DISCOVER: the fleet server does not netboot this machine")
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "bty answers") || strings.Contains(l, "GET /pxe") {
			t.Errorf("bty answered the unregistered machine: %s", l)
		}
	}
	if r := srv.fleet("show", stranger); r.code != exitUsage || !strings.Contains(r.stderr, "404") {
		t.Errorf("bty fleet show of the stranger = %d %s, want 2 and 404: it was registered", r.code, r.stderr)
	}
	observed := netboottest.Lines(lan.Log("observe"), stranger)
	netboottest.WantLines(t, "the observer's output", observed,
		`asked: DISCOVER vendor class "PXEClient:Arch:00000:UNDI:002001", arch 0 (Intel x86PC), user class "iPXE"`,
		"bty would not answer DISCOVER: the fleet server does not netboot this machine",
		"asked: REQUEST", "chose server "+netboottest.SiteAddr)
	t.Logf("observed:\n%s", strings.Join(observed, "\n"))
}

// TestServePXEErrors: what bty serve --pxe cannot do stops it at startup
// with one line naming what is missing, and exit code 2.
func TestServePXEErrors(t *testing.T) {
	requireTool(t, "setpriv")
	lan := netboottest.New(t)
	imgs, state := t.TempDir(), filepath.Join(t.TempDir(), "state")
	serve := []string{"serve", "--images", imgs, "--state", state, "--listen", ":0", "--interface", netboottest.Bridge, "--pxe"}
	for _, tt := range []struct {
		name   string
		prefix []string // a command bty runs under
		args   []string
		want   string
	}{
		{"no iPXE binaries", nil, append(serve, "--ipxe-dir", imgs), "install Debian's ipxe package (apt-get install ipxe)"},
		{"no such interface", nil, append(serve, "--interface", "nope0"), "interface nope0"},
		{"no privilege", []string{"setpriv", "--bounding-set", "-net_bind_service"}, serve, "listen on UDP port 67 (proxyDHCP): needs root or CAP_NET_BIND_SERVICE"},
		{"machines cannot reach it", nil, append(serve, "--listen", "127.0.0.1:0"), "machines cannot reach a loopback address"},
		{"no --pxe", nil, []string{"serve", "--images", imgs, "--state", state, "--pxe-known-only"}, "--pxe-known-only needs --pxe"},
		{"no --state", nil, []string{"serve", "--images", imgs, "--pxe"}, "--pxe needs --state DIR"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runCmdUnder(t, append(inNetns(lan.NS), tt.prefix...), nil, nil, tt.args...)
			// The first start of a state directory also says where the
			// admin token is.
			errs := regexp.MustCompile(`(?m)^bty: .*$`).FindAllString(r.stderr, -1)
			if r.code != exitUsage || len(errs) != 1 || !strings.Contains(errs[0], tt.want) {
				t.Errorf("bty %s = %d %q, want 2 and one error line with %q", strings.Join(tt.args, " "), r.code, r.stderr, tt.want)
			}
		})
	}
}
