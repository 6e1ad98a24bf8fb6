//go:build linux

package netboot

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"bty/netboot/netboottest"
)

// The wire tests run bty's responder in this process (its sockets opened
// inside the LAN namespace) against dnsmasq and a test client on a host of
// its own on the segment, without a VM.

// startInProcess runs a Server inside the LAN and returns its events.
func startInProcess(t *testing.T, lan *netboottest.LAN, cfg Config) func() []Event {
	t.Helper()
	var mu sync.Mutex
	var events []Event
	cfg.Interface = netboottest.Bridge
	cfg.Event = func(e Event) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}
	var s *Server
	if err := lan.Do(func() (err error) { s, err = Listen(cfg); return err }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return func() []Event {
		mu.Lock()
		defer mu.Unlock()
		return append([]Event(nil), events...)
	}
}

// wireClient is firmware's DHCP side on a host of the segment: port 68,
// broadcast flag set (as UEFI does, so every server's answer is broadcast).
type wireClient struct {
	conn *net.UDPConn
}

func newWireClient(t *testing.T, lan *netboottest.LAN) *wireClient {
	t.Helper()
	host := lan.AddHost("10.77.0.50/24")
	var conn *net.UDPConn
	err := netboottest.DoIn(host, func() error {
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) {
				syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1)
				syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
				// Broadcasts leave by eth0, as firmware's do, without a route.
				syscall.SetsockoptString(int(fd), syscall.SOL_SOCKET, syscall.SO_BINDTODEVICE, "eth0")
			})
		}}
		pc, err := lc.ListenPacket(context.Background(), "udp4", ":68")
		if err == nil {
			conn = pc.(*net.UDPConn)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &wireClient{conn: conn}
}

// exchange sends req to dst and collects the answers to it (same
// transaction) until done says enough or 30 seconds pass; the firmware's
// retransmits are imitated every 2 seconds.
func (c *wireClient) exchange(t *testing.T, req *dhcpv4.DHCPv4, dst *net.UDPAddr, done func(map[string]*dhcpv4.DHCPv4) bool) map[string]*dhcpv4.DHCPv4 {
	t.Helper()
	got := map[string]*dhcpv4.DHCPv4{} // by server identifier
	end := time.Now().Add(30 * time.Second)
	buf := make([]byte, 4096)
	for next := time.Now(); time.Now().Before(end) && !done(got); {
		if time.Now().After(next) {
			if _, err := c.conn.WriteToUDP(req.ToBytes(), dst); err != nil {
				t.Fatalf("send to %v: %v", dst, err)
			}
			next = time.Now().Add(2 * time.Second)
		}
		c.conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, _, err := c.conn.ReadFromUDP(buf)
		if err != nil {
			continue
		}
		resp, err := dhcpv4.FromBytes(buf[:n])
		if err != nil || resp.OpCode != dhcpv4.OpcodeBootReply || resp.TransactionID != req.TransactionID {
			continue
		}
		got[resp.ServerIdentifier().String()] = resp
	}
	return got
}

var broadcast = &net.UDPAddr{IP: net.IPv4bcast, Port: 67}

func both(got map[string]*dhcpv4.DHCPv4) bool {
	return got[netboottest.SiteAddr] != nil && got[netboottest.BtyAddr] != nil
}

// TestWireProxyDHCP: beside dnsmasq, bty answers a UEFI PXE client's
// DISCOVER with a proxy offer (no address) and its REQUEST on port 4011
// with an ACK naming ipxe.efi; dnsmasq alone gives the address.
func TestWireProxyDHCP(t *testing.T) {
	requireIPXE(t)
	lan := netboottest.New(t)
	lan.StartDHCP()
	events := startInProcess(t, lan, Config{})
	c := newWireClient(t, lan)

	disc := firmwareRequest(t, dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00007:UNDI:003000", iana.EFI_X86_64)
	got := c.exchange(t, disc, broadcast, both)
	if !both(got) {
		t.Fatalf("answers from %v, want dnsmasq's and bty's; events: %v\ndnsmasq:\n%s", keys(got), events(), lan.Log("dnsmasq"))
	}
	site, bty := got[netboottest.SiteAddr], got[netboottest.BtyAddr]
	if site.YourIPAddr.IsUnspecified() || bootOptions(site) != "" {
		t.Errorf("dnsmasq's offer: %s; want an address and no boot options", describeAnswer(site))
	}
	if !bty.YourIPAddr.IsUnspecified() || bty.BootFileName != "ipxe.efi" || !bty.ServerIPAddr.Equal(net.ParseIP(netboottest.BtyAddr)) {
		t.Errorf("bty's offer: %s; want no address, ipxe.efi from %s", describeAnswer(bty), netboottest.BtyAddr)
	}

	req := firmwareRequest(t, dhcpv4.MessageTypeRequest, "PXEClient:Arch:00007:UNDI:003000", iana.EFI_X86_64,
		dhcpv4.WithClientIP(net.ParseIP("10.77.0.50")), dhcpv4.WithBroadcast(false))
	got = c.exchange(t, req, &net.UDPAddr{IP: net.ParseIP(netboottest.BtyAddr), Port: portPXE}, func(g map[string]*dhcpv4.DHCPv4) bool { return g[netboottest.BtyAddr] != nil })
	ack := got[netboottest.BtyAddr]
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck || ack.BootFileName != "ipxe.efi" {
		t.Fatalf("answer on port 4011: %v; want an ACK naming ipxe.efi; events: %v", ack, events())
	}
}

// TestWireSiteBootOptions: a site DHCP server that already sends boot
// options is reported once, with what it sends; bty answers all the same.
func TestWireSiteBootOptions(t *testing.T) {
	requireIPXE(t)
	lan := netboottest.New(t)
	lan.StartDHCP("--dhcp-boot=pxelinux.0,,10.77.0.9")
	events := startInProcess(t, lan, Config{})
	c := newWireClient(t, lan)
	for range 2 {
		disc := firmwareRequest(t, dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00000:UNDI:002001", iana.INTEL_X86PC)
		if got := c.exchange(t, disc, broadcast, both); !both(got) {
			t.Fatalf("answers from %v, want dnsmasq's and bty's", keys(got))
		}
	}
	var conflicts []string
	netboottest.WaitFor(10*time.Second, func() bool {
		conflicts = nil
		for _, e := range events() {
			if e.Kind == KindConflict {
				conflicts = append(conflicts, e.String())
			}
		}
		return len(conflicts) > 0
	})
	want := `DHCP server 10.77.0.2 already sends boot options (file "pxelinux.0", next-server 10.77.0.9)`
	if len(conflicts) != 1 || !strings.Contains(conflicts[0], want) {
		t.Errorf("conflict events %q, want one with %q", conflicts, want)
	}
}

// TestWireObserverBesideBty: an observer on the machine that runs the
// serving bty reports bty's answers as a server's, not as another
// proxyDHCP's (a conflict); and bty's own answer is no conflict to bty.
func TestWireObserverBesideBty(t *testing.T) {
	requireIPXE(t)
	lan := netboottest.New(t)
	lan.StartDHCP()
	bty := startInProcess(t, lan, Config{})
	observer := startInProcess(t, lan, Config{Observe: true})
	c := newWireClient(t, lan)
	disc := firmwareRequest(t, dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00007:UNDI:003000", iana.EFI_X86_64)
	if got := c.exchange(t, disc, broadcast, both); !both(got) {
		t.Fatalf("answers from %v, want dnsmasq's and bty's", keys(got))
	}
	seen := func(server string) bool {
		for _, e := range observer() {
			if e.Kind == KindServer && e.IP.String() == server {
				return true
			}
		}
		return false
	}
	if !netboottest.WaitFor(10*time.Second, func() bool { return seen(netboottest.SiteAddr) && seen(netboottest.BtyAddr) }) {
		t.Fatalf("the observer did not see both answers: %v", observer())
	}
	for _, e := range append(observer(), bty()...) {
		if e.Kind == KindConflict {
			t.Errorf("a conflict where there is none: %s", e)
		}
	}
}

// TestWireKnownOnly: a machine the fleet server declines gets no answer on
// either port; dnsmasq still gives it an address.
func TestWireKnownOnly(t *testing.T) {
	requireIPXE(t)
	lan := netboottest.New(t)
	lan.StartDHCP()
	events := startInProcess(t, lan, Config{Answer: func(c Client) bool { return c.MAC.String() == "52:54:00:00:00:99" }})
	c := newWireClient(t, lan)
	disc := firmwareRequest(t, dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00000:UNDI:002001", iana.INTEL_X86PC)
	// Wait for dnsmasq's answer and bty's decision, then a last round of
	// the client's retransmits.
	declined := func(mt dhcpv4.MessageType) bool {
		for _, e := range events() {
			if e.Kind == KindIgnore && strings.Contains(e.Text, mt.String()+": "+errNotAnswered.Error()) {
				return true
			}
		}
		return false
	}
	got := c.exchange(t, disc, broadcast, func(g map[string]*dhcpv4.DHCPv4) bool {
		return g[netboottest.SiteAddr] != nil && declined(dhcpv4.MessageTypeDiscover)
	})
	req := firmwareRequest(t, dhcpv4.MessageTypeRequest, "PXEClient:Arch:00000:UNDI:002001", iana.INTEL_X86PC, dhcpv4.WithClientIP(net.ParseIP("10.77.0.50")))
	pxe := c.exchange(t, req, &net.UDPAddr{IP: net.ParseIP(netboottest.BtyAddr), Port: portPXE}, func(map[string]*dhcpv4.DHCPv4) bool {
		return declined(dhcpv4.MessageTypeRequest)
	})
	if got[netboottest.SiteAddr] == nil || !declined(dhcpv4.MessageTypeDiscover) || !declined(dhcpv4.MessageTypeRequest) {
		t.Fatalf("answers from %v, events %v; want dnsmasq's answer and bty's decisions", keys(got), events())
	}
	if got[netboottest.BtyAddr] != nil || pxe[netboottest.BtyAddr] != nil {
		t.Errorf("bty answered a machine it was told not to: %v %v", got[netboottest.BtyAddr], pxe[netboottest.BtyAddr])
	}
}

// TestListenErrors: without the privilege to bind port 67, or without the
// iPXE binaries, Listen fails at once and names what is missing.
func TestListenErrors(t *testing.T) {
	lan := netboottest.New(t)
	t.Run("missing iPXE binaries", func(t *testing.T) {
		empty := t.TempDir()
		err := lan.Do(func() error { _, err := Listen(Config{Interface: netboottest.Bridge, IPXEDir: empty}); return err })
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "apt-get install ipxe") || !strings.Contains(err.Error(), filepath.Join(empty, "undionly.kpxe")) {
			t.Errorf("Listen with an empty iPXE dir: %v; want ErrConfig naming the file and the package", err)
		}
	})
	t.Run("no such interface", func(t *testing.T) {
		err := lan.Do(func() error { _, err := Listen(Config{Interface: "nope0", Observe: true}); return err })
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "interface nope0") {
			t.Errorf("Listen on nope0: %v; want ErrConfig naming the interface", err)
		}
	})
	t.Run("not root", func(t *testing.T) {
		if _, err := exec.LookPath("setpriv"); err != nil {
			t.Skip("setpriv not installed (apt-get install util-linux)")
		}
		// A copy of the test binary that nobody may run, in a directory
		// nobody may enter.
		dir := t.TempDir()
		for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
			os.Chmod(d, 0o755)
		}
		bin := filepath.Join(dir, "netboot.test")
		b, err := os.ReadFile(os.Args[0])
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(bin, b, 0o755)
		cmd := lan.Command(context.Background(), "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", bin)
		cmd.Env = append(os.Environ(), `BTY_NETBOOT_RESPONDER={"Observe":true}`)
		out, err := cmd.CombinedOutput()
		want := "listen on UDP port 67 (proxyDHCP): needs root or CAP_NET_BIND_SERVICE"
		if err == nil || !strings.Contains(string(out), want) {
			t.Errorf("responder as nobody: %v, %q; want a failure with %q", err, out, want)
		}
	})
}

func keys(m map[string]*dhcpv4.DHCPv4) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	return k
}
