package netboot

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// Firmware is the kind of netboot client that asked.
type Firmware int

const (
	// BIOS is a legacy PXE ROM (client architecture 0): it gets undionly.kpxe
	// over TFTP.
	BIOS Firmware = iota + 1
	// UEFI is a UEFI PXE client on x86-64 (architecture 7 or 9): it gets the
	// EFI iPXE binary over TFTP.
	UEFI
	// UEFIHTTP is UEFI HTTP boot on x86-64 (architecture 16): it gets the
	// EFI iPXE binary's URL.
	UEFIHTTP
	// IPXE is iPXE itself (user class "iPXE"), from a NIC's ROM or loaded by
	// one of the above: it gets the bootstrap script's URL.
	IPXE
)

func (f Firmware) String() string {
	switch f {
	case BIOS:
		return "BIOS PXE"
	case UEFI:
		return "UEFI PXE"
	case UEFIHTTP:
		return "UEFI HTTP boot"
	case IPXE:
		return "iPXE"
	}
	return "unknown firmware"
}

// Client is a netboot client as its DHCP request describes it.
type Client struct {
	MAC      net.HardwareAddr
	Arch     iana.Arch // DHCP option 93
	Firmware Firmware
}

// Vendor classes (option 60) of netboot clients, and of the answers to them.
const (
	pxeClient  = "PXEClient"
	httpClient = "HTTPClient"
)

// errNotNetboot: the request is ordinary DHCP, not firmware asking for a
// boot file; bty leaves it to the site's DHCP server.
var errNotNetboot = errors.New("not a netboot client (vendor class is not PXEClient or HTTPClient)")

// errNotAnswered: the fleet server's Answer said no.
var errNotAnswered = errors.New("the fleet server does not netboot this machine")

// classify reads what kind of netboot client sent req.
func classify(req *dhcpv4.DHCPv4) (Client, error) {
	c := Client{MAC: req.ClientHWAddr}
	vc := req.ClassIdentifier()
	isPXE, isHTTP := strings.HasPrefix(vc, pxeClient), strings.HasPrefix(vc, httpClient)
	if !isPXE && !isHTTP {
		return c, errNotNetboot
	}
	archs := req.ClientArch()
	if len(archs) == 0 {
		return c, errors.New("no client architecture (option 93)")
	}
	c.Arch = archs[0]
	switch {
	case isIPXE(req):
		c.Firmware = IPXE
	case isHTTP && c.Arch == iana.EFI_X86_64_HTTP:
		c.Firmware = UEFIHTTP
	case isPXE && c.Arch == iana.INTEL_X86PC:
		c.Firmware = BIOS
	// RFC 4578 swapped 7 and 9; firmware sends either for x86-64.
	case isPXE && (c.Arch == iana.EFI_X86_64 || c.Arch == iana.EFI_BC):
		c.Firmware = UEFI
	default:
		return c, fmt.Errorf("no iPXE binary for architecture %d (%s), only for x86 BIOS and x86-64 UEFI", uint16(c.Arch), c.Arch)
	}
	return c, nil
}

// isIPXE: the user class (option 77) is "iPXE", as iPXE sends it (raw), or
// in the RFC 3004 form.
func isIPXE(req *dhcpv4.DHCPv4) bool {
	raw := req.Options.Get(dhcpv4.OptionUserClassInformation)
	if string(raw) == "iPXE" {
		return true
	}
	for _, uc := range req.UserClass() {
		if uc == "iPXE" {
			return true
		}
	}
	return false
}

// responder decides bty's proxyDHCP answers. It keeps no state between
// packets, so it answers alike whatever other servers answered and in
// whatever order the firmware sees the answers.
type responder struct {
	ip     net.IP // bty's address: server identifier and next-server
	base   string // the fleet server's base URL, "http://host:port"
	efi    string // the EFI iPXE binary: "ipxe.efi" or "snponly.efi"
	answer func(Client) bool
}

// bootFile is what c is told to load.
func (r *responder) bootFile(c Client) string {
	switch c.Firmware {
	case BIOS:
		return "undionly.kpxe"
	case UEFI:
		return r.efi
	case UEFIHTTP:
		return r.base + "/boot/" + r.efi
	}
	return r.base + "/pxe-bootstrap.ipxe"
}

// reply builds bty's answer to a netboot client's DISCOVER (an OFFER) or
// REQUEST (an ACK), or says why there is none. pxePort is true for
// requests that came to port 4011, where the client asks bty alone.
func (r *responder) reply(req *dhcpv4.DHCPv4, c Client, pxePort bool) (*dhcpv4.DHCPv4, error) {
	var mt dhcpv4.MessageType
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		mt = dhcpv4.MessageTypeOffer
	case dhcpv4.MessageTypeRequest:
		// On port 67 a REQUEST picks one server's offer: answer only
		// when it picks bty's.
		if sid := req.ServerIdentifier(); !pxePort && !sid.Equal(r.ip) {
			return nil, fmt.Errorf("request is for server %v", sid)
		}
		mt = dhcpv4.MessageTypeAck
	default:
		return nil, fmt.Errorf("%s is not answered", req.MessageType())
	}
	if r.answer != nil && !r.answer(c) {
		return nil, errNotAnswered
	}
	resp, err := dhcpv4.NewReplyFromRequest(req, dhcpv4.WithMessageType(mt))
	if err != nil {
		return nil, err
	}
	// No address (yiaddr stays 0.0.0.0): that is the site's DHCP server's
	// job. ciaddr is echoed on the PXE port, where the client has one.
	resp.ClientIPAddr = req.ClientIPAddr
	resp.ServerIPAddr = r.ip
	resp.BootFileName = r.bootFile(c)
	resp.UpdateOption(dhcpv4.OptServerIdentifier(r.ip))
	class := pxeClient
	if c.Firmware == UEFIHTTP {
		class = httpClient
	}
	// The PXE spec: a proxyDHCP answer carries the client's own class.
	resp.UpdateOption(dhcpv4.OptClassIdentifier(class))
	// The PXE spec asks the client's UUID to be echoed; some ROMs drop
	// answers without it.
	if guid := req.GetOneOption(dhcpv4.OptionClientMachineIdentifier); len(guid) > 0 {
		resp.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, guid))
	}
	if c.Firmware == BIOS || c.Firmware == UEFI {
		// PXE vendor options: discovery control 8 says "no boot server
		// discovery, load the file named in this answer". A PXE ROM drops a
		// proxy offer without option 43; with it, the file comes with the
		// offer and the 4011 exchange is only a fallback.
		resp.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, pxeDiscoveryControl))
	}
	return resp, nil
}

// pxeDiscoveryControl is option 43 with PXE_DISCOVERY_CONTROL (6) = 8, and
// the end mark.
var pxeDiscoveryControl = []byte{6, 1, 8, 255}

// bootOptions describes the boot information in a DHCP server's answer,
// or returns "" when there is none.
func bootOptions(resp *dhcpv4.DHCPv4) string {
	var parts []string
	if vc := resp.ClassIdentifier(); vc == pxeClient || vc == httpClient {
		parts = append(parts, "vendor class "+vc)
	}
	if s := resp.TFTPServerName(); s != "" {
		parts = append(parts, "TFTP server (option 66) "+s)
	}
	if f := resp.BootFileNameOption(); f != "" {
		parts = append(parts, fmt.Sprintf("boot file (option 67) %q", f))
	}
	if resp.BootFileName != "" {
		parts = append(parts, fmt.Sprintf("file %q", resp.BootFileName))
		if ip := resp.ServerIPAddr; ip != nil && !ip.IsUnspecified() {
			parts = append(parts, "next-server "+ip.String())
		}
	}
	return strings.Join(parts, ", ")
}

// describeRequest says in one line what a client asked.
func describeRequest(req *dhcpv4.DHCPv4) string {
	var b strings.Builder
	b.WriteString(req.MessageType().String())
	if vc := req.ClassIdentifier(); vc != "" {
		fmt.Fprintf(&b, " vendor class %q", vc)
	}
	if archs := req.ClientArch(); len(archs) > 0 {
		fmt.Fprintf(&b, ", arch %d (%s)", uint16(archs[0]), archs[0])
	}
	if uc := req.Options.Get(dhcpv4.OptionUserClassInformation); uc != nil {
		fmt.Fprintf(&b, ", user class %q", bytes.TrimRight(uc, "\x00"))
	}
	if req.MessageType() == dhcpv4.MessageTypeRequest {
		if ip := req.RequestedIPAddress(); ip != nil {
			fmt.Fprintf(&b, ", address %v", ip)
		}
		if sid := req.ServerIdentifier(); sid != nil {
			fmt.Fprintf(&b, ", chose server %v", sid)
		}
	}
	return b.String()
}

// describeAnswer says in one line what a server answered.
func describeAnswer(resp *dhcpv4.DHCPv4) string {
	var b strings.Builder
	b.WriteString(resp.MessageType().String())
	if ip := resp.YourIPAddr; ip != nil && !ip.IsUnspecified() {
		fmt.Fprintf(&b, " address %v", ip)
	} else {
		b.WriteString(" no address (proxyDHCP)")
	}
	if bo := bootOptions(resp); bo != "" {
		b.WriteString(", " + bo)
	} else {
		b.WriteString(", no boot options")
	}
	return b.String()
}
