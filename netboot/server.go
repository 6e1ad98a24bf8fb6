package netboot

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/net/ipv4"
	"golang.org/x/sync/errgroup"
)

// DefaultIPXEDir is where Debian's ipxe package installs its binaries.
const DefaultIPXEDir = "/usr/lib/ipxe"

// Ports.
const (
	portDHCP   = 67   // DHCP server: DISCOVERs and REQUESTs, broadcast
	portClient = 68   // DHCP client: every server's answers, broadcast
	portPXE    = 4011 // PXE boot server: REQUESTs to bty alone
	portTFTP   = 69
)

// Config configures a Server. The zero value of each field says what it
// means.
type Config struct {
	// Interface is the network interface facing the machines. bty's first
	// IPv4 address on it is the next-server and the host of the boot URLs.
	// Empty: the interface of the default route.
	Interface string
	// HTTPBase is the fleet server's URL as machines reach it,
	// "http://host:port". An empty or unspecified host ("http://:8080",
	// "http://0.0.0.0:8080") is replaced by bty's address on Interface.
	// Empty: http://ADDRESS:8080.
	HTTPBase string
	// IPXEDir holds undionly.kpxe and the EFI binary, served over TFTP.
	// Empty: DefaultIPXEDir (Debian's ipxe package).
	IPXEDir string
	// EFIBinary is the iPXE binary UEFI machines load: "ipxe.efi" (iPXE's
	// own NIC drivers) or "snponly.efi" (the firmware's). Empty: "ipxe.efi".
	EFIBinary string
	// Answer decides whether bty answers a machine; this is where the fleet
	// server answers only registered machines, or every machine so that new
	// ones are discovered. It is called from several goroutines. Nil: every
	// netboot client is answered.
	Answer func(Client) bool
	// Observe listens without answering: events say what each client
	// asked, what every DHCP server answered and what bty would answer.
	// Nothing is served over TFTP and the iPXE binaries are not needed.
	Observe bool
	// Event receives what the responders did and saw. Nil discards it.
	Event func(Event)
}

// Server is a proxyDHCP responder (UDP 67 and 4011) and a TFTP server
// (UDP 69) for the iPXE binaries, on one interface.
type Server struct {
	cfg     Config
	ifindex int
	r       responder
	dhcp    *ipv4.PacketConn // port 67
	pxe     *ipv4.PacketConn // port 4011; nil in observe mode
	watch   *ipv4.PacketConn // port 68; nil when another program holds it
	tftp    *TFTPServer      // nil in observe mode
	stage   string           // the TFTP root: copies of the iPXE binaries

	mu   sync.Mutex
	seen map[string]bool // events already reported, against retransmits
}

// Listen checks the configuration and opens every socket, so that a
// missing privilege or binary fails at startup, named.
func Listen(cfg Config) (*Server, error) {
	if cfg.Event == nil {
		cfg.Event = func(Event) {}
	}
	if cfg.IPXEDir == "" {
		cfg.IPXEDir = DefaultIPXEDir
	}
	if cfg.EFIBinary == "" {
		cfg.EFIBinary = "ipxe.efi"
	}
	if cfg.EFIBinary != "ipxe.efi" && cfg.EFIBinary != "snponly.efi" {
		return nil, fmt.Errorf("%w: EFI binary %q: use ipxe.efi or snponly.efi", ErrConfig, cfg.EFIBinary)
	}
	ifi, ip, err := pickInterface(cfg.Interface)
	if err != nil {
		return nil, err
	}
	base, err := httpBase(cfg.HTTPBase, ip)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, ifindex: ifi.Index, seen: map[string]bool{},
		r: responder{ip: ip, base: base, efi: cfg.EFIBinary, answer: cfg.Answer}}
	if !cfg.Observe {
		if s.stage, err = stage(cfg.IPXEDir, "undionly.kpxe", cfg.EFIBinary); err != nil {
			return nil, err
		}
	}
	if s.dhcp, err = listenUDP(portDHCP, "proxyDHCP"); err != nil {
		s.Close()
		return nil, err
	}
	if s.watch, err = listenUDP(portClient, "DHCP answers"); err != nil {
		if cfg.Observe {
			s.Close()
			return nil, err
		}
		s.watch = nil
		cfg.Event(Event{Kind: KindConflict, Text: fmt.Sprintf("cannot watch other DHCP servers' answers (%v); a site DHCP server that sends boot options will not be reported", err)})
	}
	if cfg.Observe {
		return s, nil
	}
	if s.pxe, err = listenUDP(portPXE, "PXE boot server"); err != nil {
		s.Close()
		return nil, err
	}
	s.tftp, err = ListenTFTP(TFTPConfig{Addr: net.JoinHostPort(ip.String(), fmt.Sprint(portTFTP)), Root: s.stage, Event: cfg.Event})
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Addr is bty's address on the interface: the next-server it announces.
func (s *Server) Addr() net.IP { return s.r.ip }

// HTTPBase is the fleet server's URL as the answers give it.
func (s *Server) HTTPBase() string { return s.r.base }

// Serve answers until ctx is cancelled, then closes the server.
func (s *Server) Serve(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	stop := context.AfterFunc(ctx, func() { s.closeUDP() })
	defer stop()
	g.Go(func() error { return s.serveDHCP(ctx, s.dhcp, false) })
	if s.pxe != nil {
		g.Go(func() error { return s.serveDHCP(ctx, s.pxe, true) })
	}
	if s.watch != nil {
		g.Go(func() error { return s.serveWatch(ctx) })
	}
	if s.tftp != nil {
		g.Go(func() error { return s.tftp.Serve(ctx) })
	}
	err := g.Wait()
	s.removeStage()
	return err
}

// Close stops a server whose Serve was never called.
func (s *Server) Close() error {
	s.closeUDP()
	if s.tftp != nil {
		s.tftp.Close()
	}
	s.removeStage()
	return nil
}

func (s *Server) removeStage() {
	if s.stage != "" {
		os.RemoveAll(s.stage)
	}
}

// stage copies the named iPXE binaries from dir into a new private
// directory, the TFTP root. Debian's ipxe.efi is a link to /boot/ipxe.efi,
// which a root confined to dir would refuse; the copies also hold still
// while the package is upgraded. They are about 1 MiB.
func stage(dir string, names ...string) (string, error) {
	tmp, err := os.MkdirTemp("", "bty-tftp-")
	if err != nil {
		return "", err
	}
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err == nil {
			err = os.WriteFile(filepath.Join(tmp, name), b, 0o444)
		}
		if err != nil {
			os.RemoveAll(tmp)
			return "", fmt.Errorf("%w: iPXE binary %s: %w: install Debian's ipxe package (apt-get install ipxe) or name a directory that holds undionly.kpxe and %s (bty serve --ipxe-dir)", ErrConfig, filepath.Join(dir, name), err, names[len(names)-1])
		}
	}
	return tmp, nil
}

func (s *Server) closeUDP() {
	for _, c := range []*ipv4.PacketConn{s.dhcp, s.pxe, s.watch} {
		if c != nil {
			c.Close()
		}
	}
}

// listenUDP binds a UDP port on every address, sharing it with other
// programs that do the same (SO_REUSEADDR), so broadcasts reach each of
// them. The interface of each packet is read from IP_PKTINFO and answers
// leave by it, which needs no CAP_NET_RAW (SO_BINDTODEVICE did before
// Linux 5.7).
func listenUDP(port int, what string) (*ipv4.PacketConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
			if serr == nil {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1)
			}
		})
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf(":%d", port))
	if err != nil {
		return nil, listenError(port, what, err)
	}
	p := ipv4.NewPacketConn(pc)
	if err := p.SetControlMessage(ipv4.FlagInterface, true); err != nil {
		pc.Close()
		return nil, fmt.Errorf("UDP port %d (%s): %w", port, what, err)
	}
	return p, nil
}

// serveDHCP answers netboot clients on port 67 or 4011.
func (s *Server) serveDHCP(ctx context.Context, conn *ipv4.PacketConn, pxePort bool) error {
	buf := make([]byte, 4096)
	for {
		n, cm, peer, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("proxyDHCP: %w", err)
		}
		if cm == nil || cm.IfIndex != s.ifindex {
			continue
		}
		req, err := dhcpv4.FromBytes(buf[:n])
		if err != nil || req.OpCode != dhcpv4.OpcodeBootRequest {
			continue
		}
		s.handle(conn, peer.(*net.UDPAddr), req, pxePort)
	}
}

// handle answers one request, or reports why not.
func (s *Server) handle(conn *ipv4.PacketConn, peer *net.UDPAddr, req *dhcpv4.DHCPv4, pxePort bool) {
	mac := req.ClientHWAddr
	// Firmware sends a request again and again until answered: one event
	// per transaction.
	once := func(e Event) { s.once(e, mac.String()+req.TransactionID.String()+e.Text) }
	if s.cfg.Observe {
		once(Event{Kind: KindRequest, MAC: mac, Text: "asked: " + describeRequest(req)})
	}
	c, err := classify(req)
	if errors.Is(err, errNotNetboot) {
		return
	}
	var resp *dhcpv4.DHCPv4
	if err == nil {
		resp, err = s.r.reply(req, c, pxePort)
	}
	answers, declines := "bty answers", "bty does not answer"
	if s.cfg.Observe {
		answers, declines = "bty would answer", "bty would not answer"
	}
	if err != nil {
		// A REQUEST on port 67 for another server's offer is no news.
		if req.MessageType() != dhcpv4.MessageTypeRequest || pxePort {
			once(Event{Kind: KindIgnore, MAC: mac, Text: fmt.Sprintf("%s %s: %v", declines, req.MessageType(), err)})
		}
		return
	}
	once(Event{Kind: KindAnswer, MAC: mac, Firmware: c.Firmware, File: resp.BootFileName,
		Text: fmt.Sprintf("%s %s: %s %s from %v", answers, c.Firmware, resp.MessageType(), resp.BootFileName, s.r.ip)})
	if s.cfg.Observe {
		return
	}
	dst := peer
	switch {
	case pxePort:
		// The client has its address and asked bty directly.
	case !req.GatewayIPAddr.IsUnspecified():
		// Through a relay agent (RFC 2131 4.1).
		dst = &net.UDPAddr{IP: req.GatewayIPAddr, Port: portDHCP}
	default:
		// The client has no address yet.
		dst = &net.UDPAddr{IP: net.IPv4bcast, Port: portClient}
	}
	if _, err := conn.WriteTo(resp.ToBytes(), &ipv4.ControlMessage{IfIndex: s.ifindex}, dst); err != nil {
		s.cfg.Event(Event{Kind: KindIgnore, MAC: mac, Text: fmt.Sprintf("sending the answer to %v failed: %v", dst, err)})
	}
}

// serveWatch reads every DHCP server's broadcast answers on port 68: a
// site DHCP server that already sends boot options, or another proxyDHCP,
// is reported; in observe mode, every answer is.
func (s *Server) serveWatch(ctx context.Context) error {
	buf := make([]byte, 4096)
	for {
		n, cm, peer, err := s.watch.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watching DHCP answers: %w", err)
		}
		if cm == nil || cm.IfIndex != s.ifindex {
			continue
		}
		resp, err := dhcpv4.FromBytes(buf[:n])
		if err != nil || resp.OpCode != dhcpv4.OpcodeBootReply {
			continue
		}
		from := resp.ServerIdentifier()
		if from == nil {
			from = peer.(*net.UDPAddr).IP
		}
		mac := resp.ClientHWAddr
		if s.cfg.Observe {
			e := Event{Kind: KindServer, MAC: mac, IP: from, Text: fmt.Sprintf("server %v answered: %s", from, describeAnswer(resp))}
			s.once(e, mac.String()+resp.TransactionID.String()+e.Text)
		}
		if from.Equal(s.r.ip) {
			// bty's own answer, looped back; to an observer, the answer of
			// the bty serving beside it on this machine.
			continue
		}
		bo := bootOptions(resp)
		if bo == "" {
			continue
		}
		text := fmt.Sprintf("DHCP server %v already sends boot options (%s): the firmware may boot that instead of bty; remove them for the machines bty boots", from, bo)
		if resp.YourIPAddr.IsUnspecified() {
			text = fmt.Sprintf("another proxyDHCP server %v answers netboot clients too (%s): the firmware follows one of them; run only one", from, bo)
		}
		// Once per server and boot options: the operator needs to know,
		// not to be told at every boot.
		s.once(Event{Kind: KindConflict, MAC: mac, IP: from, Text: text}, from.String()+" "+bo)
	}
}

// once reports e unless an event of its kind was reported for the same
// key. The memory is bounded: it is forgotten when full.
func (s *Server) once(e Event, key string) {
	k := string(e.Kind) + " " + key
	s.mu.Lock()
	if len(s.seen) > 4096 {
		clear(s.seen)
	}
	dup := s.seen[k]
	s.seen[k] = true
	s.mu.Unlock()
	if !dup {
		s.cfg.Event(e)
	}
}

// pickInterface finds the interface and bty's IPv4 address on it.
func pickInterface(name string) (*net.Interface, net.IP, error) {
	if name == "" {
		var err error
		if name, err = defaultRouteInterface(); err != nil {
			return nil, nil, err
		}
	}
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: interface %s: %w (ip link lists them)", ErrConfig, name, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: interface %s: %w", ErrConfig, name, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			return ifi, n.IP.To4(), nil
		}
	}
	return nil, nil, fmt.Errorf("%w: interface %s has no IPv4 address: bty needs one on the machines' network", ErrConfig, name)
}

// defaultRouteInterface reads the interface of the IPv4 default route.
func defaultRouteInterface() (string, error) {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return "", fmt.Errorf("%w: no interface named, and the default route is unknown: %w", ErrConfig, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 2 && fields[1] == "00000000" && fields[0] != "Iface" {
			return fields[0], nil
		}
	}
	return "", fmt.Errorf("%w: no interface named and no default route: name the interface facing the machines", ErrConfig)
}

// httpBase fills in bty's address where the base URL has none.
func httpBase(base string, ip net.IP) (string, error) {
	if base == "" {
		base = "http://:8080"
	}
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" || u.Port() == "" || (u.Path != "" && u.Path != "/") {
		return "", fmt.Errorf("%w: HTTP base %q: want http://HOST:PORT (iPXE and UEFI HTTP boot fetch plain HTTP)", ErrConfig, base)
	}
	if h := net.ParseIP(u.Hostname()); u.Hostname() == "" || (h != nil && h.IsUnspecified()) {
		u.Host = net.JoinHostPort(ip.String(), u.Port())
	}
	return "http://" + u.Host, nil
}
