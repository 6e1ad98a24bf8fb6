package netboot

import "bty/category"

// Every error Listen returns wraps one of these, both in category.ErrUsage (the
// command line or the machine must change).
var (
	// ErrConfig: the configuration cannot work (no such interface, no IPv4
	// address on it, a missing iPXE binary, a bad HTTP base URL).
	ErrConfig = category.New(category.ErrUsage, "netboot configuration")
	// ErrPrivilege: the process may not bind the DHCP, PXE or TFTP ports.
	ErrPrivilege = category.New(category.ErrUsage, "missing privilege")
)
