package netboot

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"bty/netboot/netboottest"
)

// The VM tests boot real firmware on a private segment (see netboottest):
// dnsmasq gives addresses only, bty the boot information, a test HTTP
// server stands in for the fleet server's routes. One qemu per test.

// vmTimeout bounds a machine's boot under TCG on a loaded machine: the
// firmware, its DHCP rounds and iPXE's take well under a minute alone.
const vmTimeout = 6 * time.Minute

// wantLines fails unless every want is found in some line of log.
func wantLines(t *testing.T, what string, log []string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		found := false
		for _, l := range log {
			if strings.Contains(l, w) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("%s has no line with %q; it says:\n%s", what, w, strings.Join(log, "\n"))
		}
	}
}

// bootChain starts a machine and waits until iPXE ran the bootstrap: the
// marker URL, with the machine's MAC and platform, is in the HTTP log.
func bootChain(t *testing.T, lan *netboottest.LAN, web *netboottest.HTTPServer, bty proc, vm netboottest.VM, platform string) *netboottest.Machine {
	t.Helper()
	m := lan.StartVM(vm)
	marker := fmt.Sprintf("/marker?mac=%s&platform=%s", strings.ReplaceAll(vm.MAC, ":", "-"), platform)
	if !netboottest.WaitFor(vmTimeout, func() bool { return web.Fetched(marker) }) {
		t.Fatalf("%s did not fetch %s; HTTP log: %v\nbty:\n%s\nconsole:\n%s\ndnsmasq:\n%s", vm.Name, marker, web.Requests(), bty.Log(), m.Console(), lan.Log("dnsmasq"))
	}
	wantLines(t, "the HTTP log", web.Requests(), "GET /pxe-bootstrap.ipxe", "GET "+marker)
	return m
}

// TestVMBIOS: SeaBIOS boots the NIC's iPXE ROM; dnsmasq gives it an
// address, bty the bootstrap URL; iPXE fetches the bootstrap and runs it.
// An observer beside bty shows what the machine asked and who answered.
// dnsmasq answers 2 s late, so bty's offer comes first and iPXE must wait
// for an address (the UEFI tests see dnsmasq's first).
func TestVMBIOS(t *testing.T) {
	requireIPXE(t)
	lan := netboottest.New(t)
	lan.StartDHCP("--dhcp-reply-delay=2")
	web := lan.StartHTTP(bootstrap())
	bty := startResponder(t, lan, "bty", responderConfig{IPXEDir: DefaultIPXEDir})
	obs := startResponder(t, lan, "observe", responderConfig{Observe: true})
	m := bootChain(t, lan, web, bty, netboottest.VM{Name: "bios", MAC: "52:54:00:00:00:01"}, "pcbios")
	wantLines(t, "bty's log", bty.Lines(m.MAC), "bty answers iPXE: OFFER http://10.77.0.1:8080/pxe-bootstrap.ipxe")
	// iPXE does not set the broadcast flag, so dnsmasq's answers go to
	// the machine's MAC alone; its REQUEST says whose address it took.
	wantLines(t, "the observer's log", obs.Lines(m.MAC),
		`asked: DISCOVER vendor class "PXEClient:Arch:00000:UNDI:002001", arch 0 (Intel x86PC), user class "iPXE"`,
		`server 10.77.0.1 answered: OFFER no address (proxyDHCP), vendor class PXEClient, file "http://10.77.0.1:8080/pxe-bootstrap.ipxe"`,
		"bty would answer iPXE: OFFER http://10.77.0.1:8080/pxe-bootstrap.ipxe",
		"asked: REQUEST", "chose server 10.77.0.2")
	t.Logf("observer:\n%s", strings.Join(obs.Lines(m.MAC), "\n"))
}

// TestVMUEFIPXE: OVMF's own PXE client (no iPXE ROM on the NIC) gets
// ipxe.efi over bty's TFTP, and iPXE then fetches the bootstrap. OVMF sets
// the broadcast flag, so the observer sees every server's answers.
func TestVMUEFIPXE(t *testing.T) {
	requireIPXE(t)
	lan := netboottest.New(t)
	lan.StartDHCP()
	web := lan.StartHTTP(bootstrap())
	bty := startResponder(t, lan, "bty", responderConfig{IPXEDir: DefaultIPXEDir})
	obs := startResponder(t, lan, "observe", responderConfig{Observe: true})
	m := bootChain(t, lan, web, bty, netboottest.VM{Name: "uefi", MAC: "52:54:00:00:00:02", UEFI: true}, "efi")
	st, err := os.Stat(DefaultIPXEDir + "/ipxe.efi")
	if err != nil {
		t.Fatal(err)
	}
	wantLines(t, "bty's log", strings.Split(bty.Log(), "\n"),
		m.MAC+" bty answers UEFI PXE: OFFER ipxe.efi from 10.77.0.1",
		fmt.Sprintf("tftp: sent ipxe.efi (%d bytes", st.Size()),
		m.MAC+" bty answers iPXE: OFFER http://10.77.0.1:8080/pxe-bootstrap.ipxe")
	wantLines(t, "the observer's log", obs.Lines(m.MAC),
		`asked: DISCOVER vendor class "PXEClient:Arch:00007`,
		"server 10.77.0.2 answered: OFFER address 10.77.0.1", "no boot options",
		`server 10.77.0.1 answered: OFFER no address (proxyDHCP), vendor class PXEClient, file "ipxe.efi", next-server 10.77.0.1`,
		"bty would answer UEFI PXE: OFFER ipxe.efi",
		"server 10.77.0.2 answered: ACK address 10.77.0.1")
	t.Logf("observer:\n%s", strings.Join(obs.Lines(m.MAC), "\n"))
}

// TestVMUEFIHTTP: OVMF's HTTP boot (PXE off) gets ipxe.efi's URL from bty
// and fetches it over HTTP; iPXE then fetches the bootstrap.
func TestVMUEFIHTTP(t *testing.T) {
	requireIPXE(t)
	lan := netboottest.New(t)
	lan.StartDHCP()
	web := lan.StartHTTP(bootstrap())
	bty := startResponder(t, lan, "bty", responderConfig{IPXEDir: DefaultIPXEDir})
	m := bootChain(t, lan, web, bty, netboottest.VM{Name: "http", MAC: "52:54:00:00:00:03", UEFI: true, HTTPBoot: true}, "efi")
	wantLines(t, "the HTTP log", web.Requests(), "GET /boot/ipxe.efi")
	wantLines(t, "bty's log", bty.Lines(m.MAC), "bty answers UEFI HTTP boot: OFFER http://10.77.0.1:8080/boot/ipxe.efi from 10.77.0.1")
}

// TestVMKnownOnly: with only registered machines answered, an unregistered
// one gets its address from dnsmasq and nothing from bty, so it does not
// boot; the observer says why.
func TestVMKnownOnly(t *testing.T) {
	requireIPXE(t)
	lan := netboottest.New(t)
	lan.StartDHCP()
	web := lan.StartHTTP(bootstrap())
	known := []string{"52:54:00:00:00:99"}
	bty := startResponder(t, lan, "bty", responderConfig{IPXEDir: DefaultIPXEDir, Known: known})
	obs := startResponder(t, lan, "observe", responderConfig{Observe: true, Known: known})
	m := lan.StartVM(netboottest.VM{Name: "stranger", MAC: "52:54:00:00:00:04"})
	if !netboottest.WaitFor(vmTimeout, func() bool { return strings.Contains(m.Console(), "Nothing to boot") }) {
		t.Fatalf("the machine did not give up; HTTP log: %v\nbty:\n%s\nconsole:\n%s", web.Requests(), bty.Log(), m.Console())
	}
	if reqs := web.Requests(); len(reqs) > 0 {
		t.Errorf("an unregistered machine fetched %v", reqs)
	}
	lines := bty.Lines(m.MAC)
	wantLines(t, "bty's log", lines, "bty does not answer DISCOVER: the fleet server does not netboot this machine")
	for _, l := range lines {
		if strings.HasPrefix(l, "answer:") {
			t.Errorf("bty answered an unregistered machine: %s", l)
		}
	}
	wantLines(t, "the observer's log", obs.Lines(m.MAC),
		"asked: DISCOVER", "bty would not answer DISCOVER: the fleet server does not netboot this machine",
		"asked: REQUEST", "chose server 10.77.0.2")
	t.Logf("observer:\n%s", strings.Join(obs.Lines(m.MAC), "\n"))
}
