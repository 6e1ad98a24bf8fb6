package netboot

import (
	"net"
)

// EventKind says what an Event reports.
type EventKind string

const (
	// KindRequest: a DHCP client asked (reported in observe mode).
	KindRequest EventKind = "request"
	// KindAnswer: bty answered a netboot client; in observe mode, what bty
	// would have answered.
	KindAnswer EventKind = "answer"
	// KindIgnore: a netboot client that bty does not answer, and why.
	KindIgnore EventKind = "ignore"
	// KindServer: another DHCP server answered a client (observe mode).
	KindServer EventKind = "server"
	// KindConflict: another DHCP server already sends boot options, or another
	// proxyDHCP answers, so firmware may follow it instead of bty; or bty
	// cannot watch for them. A warning.
	KindConflict EventKind = "conflict"
	// KindTFTP: a file was sent over TFTP.
	KindTFTP EventKind = "tftp"
	// KindTFTPError: a TFTP request was refused or a transfer failed.
	KindTFTPError EventKind = "tftp-error"
)

// Event is one thing the responders did or saw, for the log and for the
// fleet server's event stream.
type Event struct {
	Kind EventKind
	// MAC is the client's hardware address (DHCP events; nil for TFTP).
	MAC net.HardwareAddr
	// IP is the peer's address: the answering server for KindServer and
	// KindConflict, the TFTP client for TFTP events; nil when not known.
	IP net.IP
	// Text says what happened, in one line for people, without the MAC.
	Text string
	// Firmware and File are what bty answered (KindAnswer): the kind of
	// client and the boot file or URL it was given.
	Firmware Firmware
	File     string
}

// String is the event as one log line, prefixed by the client it is about.
func (e Event) String() string {
	switch {
	case e.MAC != nil:
		return e.MAC.String() + " " + e.Text
	case e.IP != nil:
		return e.IP.String() + " " + e.Text
	}
	return e.Text
}
