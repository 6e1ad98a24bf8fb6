package server

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"bty/netboot"
	"bty/wire"
)

// TestPXEAnswer: which machines the proxyDHCP answers, and who is
// registered on the way.
func TestPXEAnswer(t *testing.T) {
	unknown := "52:54:00:00:00:99"
	for _, tt := range []struct {
		name               string
		knownOnly, observe bool
		wantUnknown        bool // the unknown machine is answered
		wantRegistered     bool // and registered
	}{
		{"discover", false, false, true, true},
		{"known only", true, false, false, false},
		{"observe", false, true, true, false},
		{"observe known only", true, true, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.register(wire.BootFlashOnce)
			answer := f.srv.PXEAnswer(tt.knownOnly, tt.observe)
			client := func(mac string) netboot.Client {
				hw, _ := net.ParseMAC(mac)
				return netboot.Client{MAC: hw, Firmware: netboot.UEFI}
			}
			if !answer(client(testMAC)) {
				t.Errorf("a registered machine is not answered")
			}
			if got := answer(client(unknown)); got != tt.wantUnknown {
				t.Errorf("answer(unknown) = %v, want %v", got, tt.wantUnknown)
			}
			r := f.adm("GET", "/machines/"+unknown, "")
			if registered := r.code == 200; registered != tt.wantRegistered {
				t.Fatalf("unknown machine registered = %v (%d %s), want %v", registered, r.code, r.body, tt.wantRegistered)
			}
			kinds := f.kinds()
			if has(kinds, "machine.discovered") != tt.wantRegistered {
				t.Errorf("events %v: machine.discovered should be there: %v", kinds, tt.wantRegistered)
			}
			if tt.wantRegistered {
				var m wire.Machine
				json.Unmarshal([]byte(r.body), &m)
				if m.BootMode != wire.DiscoverBootMode {
					t.Errorf("discovered machine's mode = %s, want %s", m.BootMode, wire.DiscoverBootMode)
				}
				// Asked again (a retransmit, iPXE after the firmware): answered,
				// not discovered twice.
				if !answer(client(unknown)) || has(f.kinds(), "machine.discovered") {
					t.Errorf("a discovered machine asking again: not answered, or discovered again")
				}
			}
		})
	}
}

// syncBuf is a log that the server writes from its goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestPXETimeline: bty's DHCP answer to a boot is the first step of the
// cycle that boot is offered; a boot that bty's proxyDHCP did not answer
// (the site's DHCP chains to the server) has no such step; the answers are
// events.
func TestPXETimeline(t *testing.T) {
	f := newFixture(t)
	f.register(wire.BootFlashOnce)
	hw, _ := net.ParseMAC(testMAC)
	answered := func(fw netboot.Firmware, file string) time.Time {
		f.tick(time.Second)
		at := f.now()
		f.srv.PXEEvent(netboot.Event{Kind: netboot.KindAnswer, MAC: hw, Firmware: fw, File: file, Text: "bty answers " + fw.String() + ": OFFER " + file})
		return at
	}
	first := answered(netboot.UEFI, "ipxe.efi")
	answered(netboot.IPXE, "http://bty.test:8080/pxe-bootstrap.ipxe")
	f.tick(20 * time.Second)
	p := f.flash("b1")
	c := f.machine().Cycle
	if c.ID != p.PlanID || c.DHCPAt == nil || !c.DHCPAt.Equal(first) || !c.DHCPAt.Before(*c.OfferedAt) {
		t.Errorf("cycle %d: dhcp_at %v, offered %v; want the firmware's answer at %v", c.ID, c.DHCPAt, c.OfferedAt, first)
	}
	evs := f.adm("GET", "/events?kind=netboot.dhcp.offered&subject_id="+testMAC, "").body
	if strings.Count(evs, `"netboot.dhcp.offered"`) != 2 || !strings.Contains(evs, `"firmware":"UEFI PXE"`) || !strings.Contains(evs, `"boot_file":"ipxe.efi"`) {
		t.Errorf("events of the answers: %s", evs)
	}

	// The next boot is answered and offered the disk; then a reflash whose
	// boot bty's proxyDHCP does not answer has no DHCP step, though the
	// previous boot's answers are recent.
	answered(netboot.IPXE, "http://bty.test:8080/pxe-bootstrap.ipxe")
	if s := f.boot("b2"); !isDisk(s) {
		t.Fatalf("boot after done = %q, want the disk", s)
	}
	f.want(f.adm("POST", "/machines/"+testMAC+"/reflash", `{}`), 202, "reflash")
	p = f.flash("b3")
	if c := f.machine().Cycle; c.ID != p.PlanID || c.DHCPAt != nil {
		t.Errorf("reflashed cycle %d without a DHCP answer: dhcp_at %v, want none", c.ID, c.DHCPAt)
	}
	// An armed cycle whose boot is answered gets the step, after its
	// creation.
	f.want(f.adm("POST", "/machines/"+testMAC+"/reflash", `{}`), 202, "reflash")
	f.tick(time.Minute)
	at := answered(netboot.BIOS, "undionly.kpxe")
	p = f.flash("b4")
	if c := f.machine().Cycle; c.ID != p.PlanID || c.DHCPAt == nil || !c.DHCPAt.Equal(at) || !c.DHCPAt.After(c.CreatedAt) {
		t.Errorf("armed cycle %d: created %v, dhcp_at %v, want %v", c.ID, c.CreatedAt, c.DHCPAt, at)
	}
}

// TestPXEConflict: a DHCP server that already sends boot options is a
// warning in the log and an event.
func TestPXEConflict(t *testing.T) {
	var log syncBuf
	f := newFixture(t, func(o *Options) { o.Log = &log })
	hw, _ := net.ParseMAC(testMAC)
	text := `DHCP server 10.0.0.2 already sends boot options (file "pxelinux.0"): the firmware may boot that instead of bty; remove them for the machines bty boots`
	f.srv.PXEEvent(netboot.Event{Kind: netboot.KindConflict, MAC: hw, IP: net.ParseIP("10.0.0.2"), Text: text})
	f.srv.PXEEvent(netboot.Event{Kind: netboot.KindTFTP, IP: net.ParseIP("10.0.0.50"), Text: "tftp: sent ipxe.efi"})
	if !strings.Contains(log.String(), "bty serve: warning: "+testMAC+" "+text+"\n") || !strings.Contains(log.String(), "bty serve: pxe: 10.0.0.50 tftp: sent ipxe.efi\n") {
		t.Errorf("log:\n%s", log.String())
	}
	var evs wire.Events
	json.Unmarshal([]byte(f.adm("GET", "/events?kind=netboot.dhcp.conflict", "").body), &evs)
	if len(evs.Events) != 1 || evs.Events[0].SubjectKind != "dhcp-server" || evs.Events[0].SubjectID != "10.0.0.2" || evs.Events[0].Summary != text {
		t.Errorf("conflict events = %+v", evs.Events)
	}
	if kinds := f.kinds(); has(kinds, "netboot.tftp") || len(kinds) != 1 {
		t.Errorf("events %v, want the conflict only (TFTP transfers are logged, not recorded)", kinds)
	}
}

// TestBootIPXE: UEFI HTTP boot fetches /boot/ipxe.efi: from the iPXE
// directory when the live environment's has none; nothing else of it.
func TestBootIPXE(t *testing.T) {
	ipxe := t.TempDir()
	os.WriteFile(filepath.Join(ipxe, "ipxe.efi"), []byte("MZ ipxe"), 0o644)
	os.WriteFile(filepath.Join(ipxe, "snponly.efi"), []byte("MZ snp"), 0o644)
	os.WriteFile(filepath.Join(ipxe, "undionly.kpxe"), []byte("undi"), 0o644)
	f := newFixture(t, func(o *Options) { o.IPXEDir = ipxe })
	for _, tt := range []struct {
		path string
		code int
		body string
	}{
		{"/boot/ipxe.efi", 200, "MZ ipxe"},
		{"/boot/snponly.efi", 200, "MZ snp"},
		{"/boot/undionly.kpxe", 404, ""},
		{"/boot/vmlinuz", 200, "kernel-bytes-0123456789"},
	} {
		if r := f.do("GET", tt.path, ""); r.code != tt.code || (tt.body != "" && r.body != tt.body) {
			t.Errorf("GET %s = %d %q, want %d %q", tt.path, r.code, r.body, tt.code, tt.body)
		}
	}
	// The live environment's own copy wins.
	os.WriteFile(filepath.Join(f.dir, "boot", "ipxe.efi"), []byte("MZ own"), 0o644)
	if r := f.do("GET", "/boot/ipxe.efi", ""); r.body != "MZ own" {
		t.Errorf("GET /boot/ipxe.efi with one in the boot directory = %q", r.body)
	}
	// Without an iPXE directory there is none.
	g := newFixture(t)
	if r := g.do("GET", "/boot/ipxe.efi", ""); r.code != 404 {
		t.Errorf("GET /boot/ipxe.efi without --pxe = %d", r.code)
	}
}
