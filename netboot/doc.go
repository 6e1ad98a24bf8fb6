// Package netboot brings machines to the fleet server without any change to
// the site's DHCP server: a proxyDHCP responder adds the boot information
// beside the site's answers, and a read-only TFTP server hands out iPXE.
//
//	firmware                      site DHCP            bty (Server)
//	DISCOVER (broadcast, :67) --> OFFER address  +  OFFER no address, boot file (proxyDHCP)
//	REQUEST  (broadcast, :67) --> ACK address       (silent: not bty's offer)
//	[REQUEST (unicast, :4011) ---------------------> ACK boot file]  when the firmware asks
//	RRQ undionly.kpxe | ipxe.efi (:69) ------------> TFTP, from a copy of the iPXE binaries
//	iPXE: DISCOVER, user class "iPXE" -------------> OFFER http://HOST:PORT/pxe-bootstrap.ipxe
//	GET /pxe-bootstrap.ipxe -----------------------> the fleet server (not this package)
//
// The boot file follows the firmware (Firmware, from DHCP options 60, 77
// and 93): BIOS PXE gets undionly.kpxe, UEFI PXE on x86-64 ipxe.efi (or
// snponly.efi), UEFI HTTP boot the URL of /boot/ipxe.efi, iPXE itself the
// bootstrap URL. Only clients whose vendor class is PXEClient or HTTPClient
// are answered, never with an address, and only those Config.Answer
// accepts (the fleet server's known-only or discovery policy).
//
// The responder keeps no state between packets, so it answers alike
// whatever else the firmware hears and in whatever order. It reads every
// DHCP server's broadcast answers on port 68: a site server that already
// sends boot options, or another proxyDHCP, is reported (KindConflict),
// never fought. In observe mode (Config.Observe) it answers nothing and
// reports what each client asked, what every server answered and what bty
// would answer.
//
// Sockets are plain UDP with SO_REUSEADDR and IP_PKTINFO (no raw sockets),
// so ports 67, 69 and 4011 need root or CAP_NET_BIND_SERVICE, nothing more.
// Listen opens all of them and fails at once, naming what is missing.
//
// The TFTP server (TFTPServer) is our own: RFC 1350 with the blksize,
// tsize, timeout and windowsize options, reads confined to its root by
// os.Root, a new port per transfer, retransmits on timeout, a window that
// restarts at the client's last in-order ACK.
//
// netboot imports no other package of this module; the netboottest
// package gives tests a private segment with dnsmasq and qemu.
package netboot
