package netboot

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"bty/netboot/netboottest"
)

// The VM test boots real firmware on a private segment (see netboottest):
// dnsmasq gives addresses only, bty the boot information, a test HTTP
// server stands in for the fleet server's routes. OVMF's PXE and HTTP boot,
// and a machine that bty does not answer, boot beside the real fleet server
// in the main package's pxe_vm_test.go, through to a flash; one VM test here
// keeps the answers' order that those do not see.

// vmTimeout bounds a machine's boot under TCG on a loaded machine: the
// firmware, its DHCP rounds and iPXE's take well under a minute alone.
const vmTimeout = 6 * time.Minute

// bootChain starts a machine and waits until iPXE ran the bootstrap: the
// marker URL, with the machine's MAC and platform, is in the HTTP log.
func bootChain(t *testing.T, lan *netboottest.LAN, web *netboottest.HTTPServer, bty proc, vm netboottest.VM, platform string) *netboottest.Machine {
	t.Helper()
	m := lan.StartVM(vm)
	marker := fmt.Sprintf("/marker?mac=%s&platform=%s", strings.ReplaceAll(vm.MAC, ":", "-"), platform)
	if !netboottest.WaitFor(vmTimeout, func() bool { return web.Fetched(marker) }) {
		t.Fatalf("%s did not fetch %s; HTTP log: %v\nbty:\n%s\nconsole:\n%s\ndnsmasq:\n%s", vm.Name, marker, web.Requests(), bty.Log(), m.Console(), lan.Log("dnsmasq"))
	}
	netboottest.WantLines(t, "the HTTP log", web.Requests(), "GET /pxe-bootstrap.ipxe", "GET "+marker)
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
	netboottest.WantLines(t, "bty's log", bty.Lines(m.MAC), "bty answers iPXE: OFFER http://10.77.0.1:8080/pxe-bootstrap.ipxe")
	// iPXE does not set the broadcast flag, so dnsmasq's answers go to
	// the machine's MAC alone; its REQUEST says whose address it took.
	netboottest.WantLines(t, "the observer's log", obs.Lines(m.MAC),
		`asked: DISCOVER vendor class "PXEClient:Arch:00000:UNDI:002001", arch 0 (Intel x86PC), user class "iPXE"`,
		`server 10.77.0.1 answered: OFFER no address (proxyDHCP), vendor class PXEClient, file "http://10.77.0.1:8080/pxe-bootstrap.ipxe"`,
		"bty would answer iPXE: OFFER http://10.77.0.1:8080/pxe-bootstrap.ipxe",
		"asked: REQUEST", "chose server 10.77.0.2")
	t.Logf("observer:\n%s", strings.Join(obs.Lines(m.MAC), "\n"))
}
