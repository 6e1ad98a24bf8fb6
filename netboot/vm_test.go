package netboot

import (
	"strings"
	"testing"
	"time"

	"bty/netboot/netboottest"
)

// vmTimeout bounds a machine's boot under TCG on a loaded machine: the
// firmware, its DHCP rounds and iPXE's take well under a minute alone.
const vmTimeout = 6 * time.Minute

// TestVMBIOS: SeaBIOS boots the NIC's iPXE ROM; dnsmasq gives it an
// address, bty the bootstrap URL; iPXE fetches the bootstrap and runs it.
// An observer beside bty prints what the machine asked and who answered.
func TestVMBIOS(t *testing.T) {
	requireIPXE(t)
	lan := netboottest.New(t)
	lan.StartDHCP()
	web := lan.StartHTTP(bootstrap())
	bty := startResponder(t, lan, "bty", responderConfig{IPXEDir: DefaultIPXEDir})
	obs := startResponder(t, lan, "observe", responderConfig{Observe: true})
	m := lan.StartVM(netboottest.VM{Name: "bios", MAC: "52:54:00:00:00:01"})
	if !netboottest.WaitFor(vmTimeout, func() bool { return web.Fetched("/marker?mac=52-54-00-00-00-01&platform=pcbios") }) {
		t.Fatalf("the machine did not fetch the marker; HTTP: %v\nbty:\n%s\nconsole:\n%s\ndnsmasq:\n%s", web.Requests(), bty.Log(), m.Console(), lan.Log("dnsmasq"))
	}
	t.Logf("HTTP: %v", web.Requests())
	t.Logf("dnsmasq:\n%s", lan.Log("dnsmasq"))
	t.Logf("bty:\n%s", strings.Join(bty.Lines(m.MAC), "\n"))
	t.Logf("observe:\n%s", strings.Join(obs.Lines(m.MAC), "\n"))
}

// TestVMUEFIPXE: OVMF's own PXE client (no iPXE ROM on the NIC) gets
// ipxe.efi over bty's TFTP, and iPXE then fetches the bootstrap.
func TestVMUEFIPXE(t *testing.T) {
	requireIPXE(t)
	lan := netboottest.New(t)
	lan.StartDHCP()
	web := lan.StartHTTP(bootstrap())
	bty := startResponder(t, lan, "bty", responderConfig{IPXEDir: DefaultIPXEDir})
	obs := startResponder(t, lan, "observe", responderConfig{Observe: true})
	m := lan.StartVM(netboottest.VM{Name: "uefi", MAC: "52:54:00:00:00:02", UEFI: true})
	if !netboottest.WaitFor(vmTimeout, func() bool { return web.Fetched("/marker?mac=52-54-00-00-00-02&platform=efi") }) {
		t.Fatalf("the machine did not fetch the marker; HTTP: %v\nbty:\n%s\nconsole:\n%s\ndnsmasq:\n%s", web.Requests(), bty.Log(), m.Console(), lan.Log("dnsmasq"))
	}
	t.Logf("HTTP: %v", web.Requests())
	t.Logf("bty:\n%s", bty.Log())
	t.Logf("observe:\n%s", obs.Log())
	t.Logf("console:\n%s", m.Console())
}

// TestVMUEFIHTTP: OVMF's HTTP boot (PXE off) gets ipxe.efi's URL from bty
// and fetches it over HTTP; iPXE then fetches the bootstrap.
func TestVMUEFIHTTP(t *testing.T) {
	requireIPXE(t)
	lan := netboottest.New(t)
	lan.StartDHCP()
	web := lan.StartHTTP(bootstrap())
	bty := startResponder(t, lan, "bty", responderConfig{IPXEDir: DefaultIPXEDir})
	m := lan.StartVM(netboottest.VM{Name: "http", MAC: "52:54:00:00:00:03", UEFI: true, HTTPBoot: true})
	if !netboottest.WaitFor(vmTimeout, func() bool { return web.Fetched("/marker?mac=52-54-00-00-00-03&platform=efi") }) {
		t.Fatalf("the machine did not fetch the marker; HTTP: %v\nbty:\n%s\nconsole:\n%s\ndnsmasq:\n%s", web.Requests(), bty.Log(), m.Console(), lan.Log("dnsmasq"))
	}
	t.Logf("HTTP: %v", web.Requests())
	t.Logf("bty:\n%s", bty.Log())
	t.Logf("console:\n%s", m.Console())
}
