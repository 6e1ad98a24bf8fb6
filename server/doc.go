// Package server is the fleet server behind `bty serve --state DIR`: it
// boots machines over PXE, tells each what to do (flash an image to a disk
// by serial, report its disks, open the wizard, boot its disk), records what
// happened, and reflashes on the three cadences a CI fleet needs (per job,
// on a new image, on failure), with power drivers to reboot machines.
//
//	DHCP -> iPXE -> GET /pxe-bootstrap.ipxe -> chain /pxe/<mac>?boot=ID
//	  (with --pxe, bty's proxyDHCP asks PXEAnswer whom to answer; PXEEvent
//	  records its answers, the cycle's dhcp step, and conflicts)
//	  GET /pxe/<mac>          the script for this boot (decideOffer), once per boot id
//	  GET /boot/vmlinuz?mac=  the live environment (--boot DIR); the cycle is booted
//	  GET /pxe/<mac>/plan     flash | inventory | interactive | exit, plan id, agent token
//	  POST progress, inventory, status (Bearer agent token) -> done | failed -> retry | quarantine
//	admin API (Bearer API token): /machines, /machines/<mac>/reflash, /events, /tokens
//	GET /metrics, /healthz, /version; /ui/: the web UI (package web), its forms call the admin API
//	the rest is the catalog (/catalog.toml, /images/)
//
// The routes and texts machines and scripts see are bty-web's (the Python
// server this replaces); docs/fleet.md has the protocol and the state
// machine. All state is in package store, so several servers can share one
// database; the image listing and the metrics counters are per process.
package server
