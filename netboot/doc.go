// Package netboot brings machines to the fleet server without any change to
// the site's DHCP server: a proxyDHCP responder and a read-only TFTP server.
package netboot
