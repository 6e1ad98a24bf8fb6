// Package fleet owns server-driven mode (docs/server-protocol.md): the client side of
// the plan protocol a PXE-booted machine follows with no one at the keyboard.
//
//	Config from flags or /proc/cmdline (bty.server=, bty.mac=)
//	  -> POST /pxe/<mac>/inventory (in the background)
//	  -> GET  /pxe/<mac>/plan -> flash | interactive | inventory | exit
//	  -> flash by exact disk serial -> POST /pxe/<mac>/status -> sync, reboot
//
// Any plan it cannot follow falls back to the wizard with <server>/catalog.toml,
// and the reason is shown. A failure is reported to the server before anything
// waits for a human.
package fleet
