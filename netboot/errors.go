package netboot

import "errors"

// Categories. Every error Listen returns wraps one of them; the caller maps
// both to the usage exit code (the command line or the machine must change).
var (
	// ErrConfig: the configuration cannot work (no such interface, no IPv4
	// address on it, a missing iPXE binary, a bad HTTP base URL).
	ErrConfig = errors.New("netboot configuration")
	// ErrPrivilege: the process may not bind the DHCP, PXE or TFTP ports.
	ErrPrivilege = errors.New("missing privilege")
)
