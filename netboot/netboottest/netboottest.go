// Package netboottest gives tests a private Ethernet segment to netboot
// machines on: network namespaces the test makes, a bridge with tap devices
// for qemu, dnsmasq as the site's DHCP server (addresses only), and a
// small HTTP server that logs what firmware fetched. Nothing uses the
// host's interfaces or addresses and no packet leaves the namespaces; every
// name is unique per run and everything is torn down in t.Cleanup.
//
//	namespace LAN (bty's side)                 namespace SITE
//	  br0 10.77.0.1  <- bty, the HTTP server      site0 10.77.0.2 <- dnsmasq
//	   |- tap0 <- qemu (a machine)                  |
//	   |- tap1 <- qemu                              |
//	   `- lan0 ---------- veth ---------------------'
//
// Tests run processes inside LAN with Command (qemu, a responder,
// `bty serve --pxe`), and open listening sockets there with Do.
package netboottest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"bty/internal/testproc"
)

// Addresses on the segment. Every LAN is in its own namespaces, so they
// are the same for every test.
const (
	Subnet   = "10.77.0.0/24"
	BtyAddr  = "10.77.0.1" // bty's address, on the bridge
	SiteAddr = "10.77.0.2" // the site DHCP server's
	Bridge   = "br0"
	HTTPPort = 8080
)

// LAN is one private segment.
type LAN struct {
	t    *testing.T
	NS   string // namespace of the bridge, bty and the machines' taps
	Site string // namespace of the site's DHCP server
	Dir  string // logs: dnsmasq.log, consoles
	taps atomic.Int32
}

var seq atomic.Int32

// Require skips the test unless it runs as root with ip and the given
// tools.
func Require(t *testing.T, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("netboot test: needs root (network namespaces, bridges, taps)")
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("netboot test: %s not installed (apt-get install %s)", tool, debianPackage(tool))
		}
	}
}

func debianPackage(tool string) string {
	switch tool {
	case "ip":
		return "iproute2"
	case "dnsmasq":
		return "dnsmasq-base"
	case "qemu-system-x86_64":
		return "qemu-system-x86"
	}
	return tool
}

// New makes a segment: both namespaces, the bridge, the veth between them.
func New(t *testing.T) *LAN {
	t.Helper()
	Require(t)
	id := fmt.Sprintf("btynb-%d-%d", os.Getpid(), seq.Add(1))
	l := &LAN{t: t, NS: id, Site: id + "s", Dir: t.TempDir()}
	for _, ns := range []string{l.NS, l.Site} {
		l.ip("netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		l.ip("-n", ns, "link", "set", "lo", "up")
	}
	l.ip("-n", l.NS, "link", "add", Bridge, "type", "bridge", "forward_delay", "0", "stp_state", "0")
	l.ip("-n", l.NS, "addr", "add", BtyAddr+"/24", "dev", Bridge)
	l.ip("-n", l.NS, "link", "set", Bridge, "up")
	l.ip("-n", l.NS, "link", "add", "lan0", "type", "veth", "peer", "name", "site0", "netns", l.Site)
	l.ip("-n", l.NS, "link", "set", "lan0", "master", Bridge, "up")
	l.ip("-n", l.Site, "addr", "add", SiteAddr+"/24", "dev", "site0")
	l.ip("-n", l.Site, "link", "set", "site0", "up")
	return l
}

func (l *LAN) ip(args ...string) {
	l.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// Command is a command that runs inside the LAN namespace.
func (l *LAN) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.NS, name}, args...)...)
}

// Do runs f on an OS thread inside the LAN namespace. Sockets f opens
// stay in the namespace (a listener's accepted connections too); sockets
// opened later by other goroutines do not, so a server that opens sockets
// as it goes (TFTP) runs in a process started with Command instead.
func (l *LAN) Do(f func() error) error { return DoIn(l.NS, f) }

// AddHost makes another namespace plugged into the bridge by a veth, its
// end named eth0, with addr ("10.77.0.50/24") on it unless addr is empty:
// a host of its own for a test client. It returns the namespace.
func (l *LAN) AddHost(addr string) string {
	l.t.Helper()
	ns := fmt.Sprintf("%sh%d", l.NS, l.taps.Add(1))
	l.ip("netns", "add", ns)
	l.t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	l.ip("-n", ns, "link", "set", "lo", "up")
	peer := fmt.Sprintf("h%d", l.taps.Load())
	l.ip("-n", l.NS, "link", "add", peer, "type", "veth", "peer", "name", "eth0", "netns", ns)
	l.ip("-n", l.NS, "link", "set", peer, "master", Bridge, "up")
	if addr != "" {
		l.ip("-n", ns, "addr", "add", addr, "dev", "eth0")
	}
	l.ip("-n", ns, "link", "set", "eth0", "up")
	return ns
}

// DoIn is Do in namespace ns. The thread goes back to the machine's own
// namespace before it is unlocked: a thread that ended instead would send
// its parent-death signal to every process it had started for another
// goroutine earlier (testproc.DieWithTest), killing dnsmasq or a registry
// mid-test. Only if it cannot go back does the thread end with f.
func DoIn(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer home.Close()
		f0, err := os.Open("/run/netns/" + ns)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer f0.Close()
		if err := setns(f0); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		err = f()
		if setns(home) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// Start starts cmd with its output in Dir/name.log and stops it at the
// end of the test.
func (l *LAN) Start(cmd *exec.Cmd, name string) {
	l.t.Helper()
	logf, err := os.Create(filepath.Join(l.Dir, name+".log"))
	if err != nil {
		l.t.Fatal(err)
	}
	testproc.DieWithTest(cmd)
	if cmd.Stdout == nil {
		cmd.Stdout = logf
	}
	if cmd.Stderr == nil {
		cmd.Stderr = logf
	}
	if err := cmd.Start(); err != nil {
		l.t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	l.t.Cleanup(func() {
		testproc.Stop(cmd.Process, unix.SIGTERM, done, 10*time.Second)
		logf.Close()
	})
}

// Log returns the content of Dir/name.log.
func (l *LAN) Log(name string) string {
	b, _ := os.ReadFile(filepath.Join(l.Dir, name+".log"))
	return string(b)
}

// StartDHCP runs dnsmasq in the site namespace as the site's DHCP server:
// addresses from 10.77.0.100 on, no DNS, no boot options unless extra
// options add them. Its log is Log("dnsmasq").
func (l *LAN) StartDHCP(extra ...string) {
	l.t.Helper()
	Require(l.t, "dnsmasq")
	args := append([]string{"netns", "exec", l.Site, "dnsmasq",
		"--keep-in-foreground", "--conf-file=/dev/null", "--port=0", "--no-resolv", "--no-hosts",
		"--user=root", "--pid-file=", "--log-facility=-", "--log-dhcp", "--no-ping",
		"--interface=site0", "--bind-interfaces", "--dhcp-authoritative",
		"--dhcp-range=10.77.0.100,10.77.0.199,255.255.255.0,1h",
		"--dhcp-leasefile=" + filepath.Join(l.Dir, "leases")}, extra...)
	l.Start(exec.Command("ip", args...), "dnsmasq")
}

// HTTPServer is a test HTTP server inside the LAN that logs every request.
type HTTPServer struct {
	Base string // http://10.77.0.1:8080
	mu   sync.Mutex
	reqs []string
}

// Requests are the requests so far, "GET /path?query".
func (h *HTTPServer) Requests() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.reqs...)
}

// Fetched reports whether a request's path and query contain s.
func (h *HTTPServer) Fetched(s string) bool {
	for _, r := range h.Requests() {
		if strings.Contains(r, s) {
			return true
		}
	}
	return false
}

// StartHTTP serves handler on BtyAddr:HTTPPort inside the LAN.
func (l *LAN) StartHTTP(handler http.Handler) *HTTPServer {
	l.t.Helper()
	h := &HTTPServer{Base: fmt.Sprintf("http://%s:%d", BtyAddr, HTTPPort)}
	var ln net.Listener
	if err := l.Do(func() (err error) {
		ln, err = net.Listen("tcp4", fmt.Sprintf("%s:%d", BtyAddr, HTTPPort))
		return err
	}); err != nil {
		l.t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.reqs = append(h.reqs, r.Method+" "+r.URL.RequestURI())
		h.mu.Unlock()
		handler.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	l.t.Cleanup(func() { srv.Close() })
	return h
}

// Machine is a qemu VM on the LAN.
type Machine struct {
	l       *LAN
	Name    string
	MAC     string
	console string
	cmd     *exec.Cmd
}

// VM says what machine to start.
type VM struct {
	Name string // names its logs
	MAC  string // e.g. "52:54:00:00:00:01"
	// UEFI boots OVMF with the firmware's own network stack (the NIC has no
	// iPXE option ROM); otherwise SeaBIOS boots the NIC's iPXE ROM.
	UEFI bool
	// HTTPBoot (UEFI only) turns the firmware's PXE off, so that it boots
	// over HTTP.
	HTTPBoot bool
	// Args are more qemu arguments: disks with serials, more memory for a
	// live environment (a later -m wins).
	Args []string
}

// StartVM adds a tap to the bridge and boots a machine from the network
// on it, under TCG. Its serial console is Console().
func (l *LAN) StartVM(vm VM) *Machine {
	l.t.Helper()
	Require(l.t, "qemu-system-x86_64")
	tap := fmt.Sprintf("tap%d", l.taps.Add(1)-1)
	l.ip("-n", l.NS, "tuntap", "add", tap, "mode", "tap")
	l.ip("-n", l.NS, "link", "set", tap, "master", Bridge, "up")
	m := &Machine{l: l, Name: vm.Name, MAC: vm.MAC, console: filepath.Join(l.Dir, vm.Name+".console")}
	nic := "virtio-net-pci,netdev=n0,mac=" + vm.MAC
	args := []string{"-accel", "tcg", "-m", "512M", "-display", "none", "-nodefaults", "-no-user-config",
		"-serial", "file:" + m.console, "-boot", "n",
		"-netdev", "tap,id=n0,ifname=" + tap + ",script=no,downscript=no"}
	if vm.UEFI {
		code, vars := ovmf(l.t)
		own := filepath.Join(l.Dir, vm.Name+".vars")
		b, err := os.ReadFile(vars)
		if err != nil {
			l.t.Fatal(err)
		}
		os.WriteFile(own, b, 0o644)
		nic += ",romfile="
		// OVMF's network boot options come in the order PXEv4, PXEv6,
		// HTTPv4, HTTPv6; IPv6 waits for answers nobody sends here.
		pxe4 := "y"
		if vm.HTTPBoot {
			pxe4 = "n"
		}
		args = append(args,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+code,
			"-drive", "if=pflash,format=raw,unit=1,file="+own,
			"-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string="+pxe4,
			"-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n")
	} else {
		// SeaBIOS copies the screen (where iPXE writes) to the serial port.
		sercon := filepath.Join(l.Dir, "sercon-port")
		os.WriteFile(sercon, []byte{0xf8, 0x03}, 0o644) // COM1, 0x3f8
		args = append(args, "-fw_cfg", "name=etc/sercon-port,file="+sercon)
	}
	args = append(append(args, "-device", nic), vm.Args...)
	m.cmd = exec.Command("ip", append([]string{"netns", "exec", l.NS, "qemu-system-x86_64"}, args...)...)
	l.Start(m.cmd, vm.Name+".qemu")
	return m
}

// Stop powers the machine off now, to free its CPU for the others.
func (m *Machine) Stop() { m.cmd.Process.Kill() }

// ovmf finds Debian's OVMF firmware (code and variables template).
func ovmf(t *testing.T) (code, vars string) {
	for _, p := range [][2]string{
		{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"},
		{"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"},
	} {
		if _, err := os.Stat(p[0]); err == nil {
			return p[0], p[1]
		}
	}
	t.Skip("netboot test: no OVMF firmware (apt-get install ovmf)")
	return "", ""
}

// Console is the machine's serial console so far, without escape codes.
func (m *Machine) Console() string {
	b, _ := os.ReadFile(m.console)
	b = ansi.ReplaceAll(b, nil)
	return string(bytes.ReplaceAll(b, []byte("\r"), nil))
}

var ansi = regexp.MustCompile(`\x1b(\[[0-9;?]*[A-Za-z]|[()][AB0-2])`)

// Lines are the lines of log that contain s (a MAC, in the form
// 52:54:00:...).
func Lines(log, s string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

// WantLines fails the test unless each want is in some line of lines;
// what names the log.
func WantLines(t *testing.T, what string, lines []string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		found := false
		for _, l := range lines {
			found = found || strings.Contains(l, w)
		}
		if !found {
			t.Errorf("%s has no line with %q; it says:\n%s", what, w, strings.Join(lines, "\n"))
		}
	}
}

// WaitFor polls cond every half second until it holds or timeout passes.
func WaitFor(timeout time.Duration, cond func() bool) bool {
	end := time.Now().Add(timeout)
	for time.Now().Before(end) {
		if cond() {
			return true
		}
		time.Sleep(500 * time.Millisecond)
	}
	return cond()
}
