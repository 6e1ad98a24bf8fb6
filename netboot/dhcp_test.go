package netboot

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

var (
	btyIP  = net.IPv4(10, 0, 0, 5).To4()
	siteIP = net.IPv4(10, 0, 0, 1).To4()
	mac    = net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}
	guid   = append([]byte{0}, []byte("0123456789abcdef")...)
)

// firmwareRequest is a request as firmware sends it.
func firmwareRequest(t *testing.T, mt dhcpv4.MessageType, class string, arch iana.Arch, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	m := []dhcpv4.Modifier{dhcpv4.WithMessageType(mt), dhcpv4.WithHwAddr(mac), dhcpv4.WithBroadcast(true),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, guid)}
	if class != "" {
		m = append(m, dhcpv4.WithOption(dhcpv4.OptClassIdentifier(class)), dhcpv4.WithOption(dhcpv4.OptClientArch(arch)))
	}
	req, err := dhcpv4.New(append(m, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// answerOf is what a test compares of an answer.
type answerOf struct {
	Type       string
	YourIP     string
	NextServer string
	ServerID   string
	Class      string
	File       string
	Option43   []byte
	GUID       bool
}

func summarize(req, resp *dhcpv4.DHCPv4) answerOf {
	return answerOf{
		Type:       resp.MessageType().String(),
		YourIP:     resp.YourIPAddr.String(),
		NextServer: resp.ServerIPAddr.String(),
		ServerID:   resp.ServerIdentifier().String(),
		Class:      resp.ClassIdentifier(),
		File:       resp.BootFileName,
		Option43:   resp.GetOneOption(dhcpv4.OptionVendorSpecificInformation),
		GUID:       string(resp.GetOneOption(dhcpv4.OptionClientMachineIdentifier)) == string(guid) && resp.TransactionID == req.TransactionID && resp.IsBroadcast(),
	}
}

// TestReply: bty answers each kind of netboot client with the boot file for
// its firmware, never with an address, with the PXE vendor options a PXE
// ROM needs, the client's UUID, transaction and broadcast flag echoed.
func TestReply(t *testing.T) {
	ipxe := dhcpv4.WithOption(dhcpv4.OptUserClass("iPXE"))
	ipxe3004 := dhcpv4.WithOption(dhcpv4.OptRFC3004UserClass([]string{"iPXE"}))
	offer := func(class, file string, opt43 []byte) answerOf {
		return answerOf{Type: "OFFER", YourIP: "0.0.0.0", NextServer: "10.0.0.5", ServerID: "10.0.0.5", Class: class, File: file, Option43: opt43, GUID: true}
	}
	tests := []struct {
		name    string
		req     *dhcpv4.DHCPv4
		efi     string
		want    answerOf
		fw      Firmware
		pxePort bool
	}{
		{"BIOS PXE ROM", firmwareRequest(t, dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00000:UNDI:002001", iana.INTEL_X86PC), "ipxe.efi",
			offer("PXEClient", "undionly.kpxe", []byte{6, 1, 8, 255}), BIOS, false},
		{"UEFI PXE, arch 7", firmwareRequest(t, dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00007:UNDI:003000", iana.EFI_X86_64), "ipxe.efi",
			offer("PXEClient", "ipxe.efi", pxeDiscoveryControl), UEFI, false},
		{"UEFI PXE, arch 9", firmwareRequest(t, dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00009:UNDI:003000", iana.EFI_BC), "ipxe.efi",
			offer("PXEClient", "ipxe.efi", pxeDiscoveryControl), UEFI, false},
		{"UEFI PXE with snponly.efi", firmwareRequest(t, dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00007:UNDI:003000", iana.EFI_X86_64), "snponly.efi",
			offer("PXEClient", "snponly.efi", pxeDiscoveryControl), UEFI, false},
		{"UEFI HTTP boot", firmwareRequest(t, dhcpv4.MessageTypeDiscover, "HTTPClient:Arch:00016:UNDI:003000", iana.EFI_X86_64_HTTP), "ipxe.efi",
			offer("HTTPClient", "http://10.0.0.5:8080/boot/ipxe.efi", nil), UEFIHTTP, false},
		{"iPXE in a BIOS NIC ROM", firmwareRequest(t, dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00000:UNDI:002001", iana.INTEL_X86PC, ipxe), "ipxe.efi",
			offer("PXEClient", "http://10.0.0.5:8080/pxe-bootstrap.ipxe", nil), IPXE, false},
		{"iPXE loaded by UEFI", firmwareRequest(t, dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00007:UNDI:003010", iana.EFI_X86_64, ipxe), "ipxe.efi",
			offer("PXEClient", "http://10.0.0.5:8080/pxe-bootstrap.ipxe", nil), IPXE, false},
		{"iPXE user class in RFC 3004 form", firmwareRequest(t, dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00000:UNDI:002001", iana.INTEL_X86PC, ipxe3004), "ipxe.efi",
			offer("PXEClient", "http://10.0.0.5:8080/pxe-bootstrap.ipxe", nil), IPXE, false},
		{"PXE boot server request on 4011", firmwareRequest(t, dhcpv4.MessageTypeRequest, "PXEClient:Arch:00007:UNDI:003000", iana.EFI_X86_64, dhcpv4.WithClientIP(net.IPv4(10, 0, 0, 100))), "ipxe.efi",
			answerOf{Type: "ACK", YourIP: "0.0.0.0", NextServer: "10.0.0.5", ServerID: "10.0.0.5", Class: "PXEClient", File: "ipxe.efi", Option43: pxeDiscoveryControl, GUID: true}, UEFI, true},
		{"REQUEST on 67 that picks bty's offer", firmwareRequest(t, dhcpv4.MessageTypeRequest, "PXEClient:Arch:00000:UNDI:002001", iana.INTEL_X86PC, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(btyIP))), "ipxe.efi",
			answerOf{Type: "ACK", YourIP: "0.0.0.0", NextServer: "10.0.0.5", ServerID: "10.0.0.5", Class: "PXEClient", File: "undionly.kpxe", Option43: pxeDiscoveryControl, GUID: true}, BIOS, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var asked Client
			r := responder{ip: btyIP, base: "http://10.0.0.5:8080", efi: tt.efi, answer: func(c Client) bool { asked = c; return true }}
			c, err := classify(tt.req)
			if err != nil {
				t.Fatalf("classify: %v", err)
			}
			resp, err := r.reply(tt.req, c, tt.pxePort)
			if err != nil {
				t.Fatalf("reply: %v", err)
			}
			if diff := cmp.Diff(tt.want, summarize(tt.req, resp)); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
			if asked.Firmware != tt.fw || asked.MAC.String() != mac.String() {
				t.Errorf("Answer was asked about %v (%v), want %v (%v)", asked.MAC, asked.Firmware, mac, tt.fw)
			}
			if tt.pxePort && !resp.ClientIPAddr.Equal(tt.req.ClientIPAddr) {
				t.Errorf("ACK on 4011: ciaddr %v, want the client's %v", resp.ClientIPAddr, tt.req.ClientIPAddr)
			}
		})
	}
}

// TestNoReply: ordinary DHCP clients, unknown architectures, another
// server's REQUEST, other message types and machines the fleet server
// declines get no answer, each for its reason.
func TestNoReply(t *testing.T) {
	tests := []struct {
		name   string
		req    *dhcpv4.DHCPv4
		answer bool
		want   string
	}{
		{"an OS's DHCP client", firmwareRequest(t, dhcpv4.MessageTypeDiscover, "", 0), true, "not a netboot client"},
		{"another vendor class", firmwareRequest(t, dhcpv4.MessageTypeDiscover, "MSFT 5.0", iana.INTEL_X86PC), true, "not a netboot client"},
		{"arm64 UEFI", firmwareRequest(t, dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00011:UNDI:003000", iana.EFI_ARM64), true, "no iPXE binary for architecture 11"},
		{"32-bit UEFI HTTP", firmwareRequest(t, dhcpv4.MessageTypeDiscover, "HTTPClient:Arch:00015:UNDI:003000", iana.EFI_X86_HTTP), true, "no iPXE binary for architecture 15"},
		{"no architecture", firmwareRequest(t, dhcpv4.MessageTypeDiscover, "PXEClient", 0, dhcpv4.WithoutOption(dhcpv4.OptionClientSystemArchitectureType)), true, "no client architecture"},
		{"REQUEST for the site server's offer", firmwareRequest(t, dhcpv4.MessageTypeRequest, "PXEClient:Arch:00000:UNDI:002001", iana.INTEL_X86PC, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(siteIP))), true, "request is for server 10.0.0.1"},
		{"INFORM", firmwareRequest(t, dhcpv4.MessageTypeInform, "PXEClient:Arch:00000:UNDI:002001", iana.INTEL_X86PC), true, "INFORM is not answered"},
		{"declined by the fleet server", firmwareRequest(t, dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00000:UNDI:002001", iana.INTEL_X86PC), false, errNotAnswered.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := responder{ip: btyIP, base: "http://10.0.0.5:8080", efi: "ipxe.efi", answer: func(Client) bool { return tt.answer }}
			c, err := classify(tt.req)
			var resp *dhcpv4.DHCPv4
			if err == nil {
				resp, err = r.reply(tt.req, c, false)
			}
			if resp != nil || err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s: answer %v, err %v; want none, because %q", tt.name, resp, err, tt.want)
			}
		})
	}
	if _, err := classify(firmwareRequest(t, dhcpv4.MessageTypeDiscover, "", 0)); !errors.Is(err, errNotNetboot) {
		t.Errorf("classify(plain DHCP) = %v, want errNotNetboot", err)
	}
}

// TestBootOptions: a DHCP answer with a boot file, TFTP server or PXE
// vendor class counts as boot options (a conflict to report); a plain
// address, even with dnsmasq's default next-server, does not.
func TestBootOptions(t *testing.T) {
	base := func(mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
		d, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer), dhcpv4.WithYourIP(net.IPv4(10, 0, 0, 100)), dhcpv4.WithServerIP(siteIP)}, mods...)...)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	withFile := base()
	withFile.BootFileName = "pxelinux.0"
	tests := []struct {
		name string
		resp *dhcpv4.DHCPv4
		want string
	}{
		{"address only, next-server set", base(), ""},
		{"file and next-server", withFile, `file "pxelinux.0", next-server 10.0.0.1`},
		{"options 66 and 67", base(dhcpv4.WithOption(dhcpv4.OptTFTPServerName("tftp.example")), dhcpv4.WithOption(dhcpv4.OptBootFileName("grubx64.efi"))), `TFTP server (option 66) tftp.example, boot file (option 67) "grubx64.efi"`},
		{"PXE vendor class", base(dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient"))), "vendor class PXEClient"},
	}
	for _, tt := range tests {
		if got := bootOptions(tt.resp); got != tt.want {
			t.Errorf("bootOptions(%s) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestHTTPBase: the fleet server's URL gets bty's address where it has
// none; anything iPXE cannot fetch is refused.
func TestHTTPBase(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", "http://10.0.0.5:8080"},
		{"http://:9000", "http://10.0.0.5:9000"},
		{"http://0.0.0.0:8080", "http://10.0.0.5:8080"},
		{"http://fleet.lab:80/", "http://fleet.lab:80"},
		{"http://10.9.9.9:8080", "http://10.9.9.9:8080"},
		{"https://fleet.lab:443", "error"},
		{"http://fleet.lab", "error"},
		{"http://fleet.lab:80/sub", "error"},
	} {
		got, err := httpBase(tt.in, btyIP)
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Errorf("httpBase(%q): %v does not wrap ErrConfig", tt.in, err)
			}
			got = "error"
		}
		if got != tt.want {
			t.Errorf("httpBase(%q) = %q (%v), want %q", tt.in, got, err, tt.want)
		}
	}
}
