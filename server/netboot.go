package server

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"time"

	"bty/netboot"
	"bty/server/store"
	"bty/wire"
)

// The fleet server's side of bty's proxyDHCP and TFTP (package netboot,
// started beside the HTTP server by `bty serve --pxe`): which machines it
// answers, which of its events are the fleet's, the DHCP step of the
// per-flash timeline, and the iPXE binaries under /boot/ for UEFI HTTP boot.

// dhcpWindow bounds how long before a boot's GET /pxe/<mac> bty's DHCP
// answer to it may come: the firmware, a TFTP transfer and iPXE's own DHCP
// take well under a minute even in a VM under TCG.
const dhcpWindow = 10 * time.Minute

// PXEAnswer returns the proxyDHCP's decision of which machines it answers.
// With knownOnly, registered machines only. Otherwise every netboot client,
// and an unknown MAC is registered as bty-inventory (machine.discovered), as
// GET /pxe/<mac> does; with observe the decision is the same but nothing is
// written (an observer only says what bty would do).
func (s *Server) PXEAnswer(knownOnly, observe bool) func(netboot.Client) bool {
	return func(c netboot.Client) bool {
		mac, err := wire.NormalizeMAC(c.MAC.String())
		if err != nil {
			return false
		}
		known, err := s.registered(mac)
		switch {
		case err != nil:
			// The registry cannot say: answer only if everyone is answered.
			s.logf("pxe: %s: the registry: %v", mac, err)
			return !knownOnly
		case known:
			return true
		case knownOnly:
			return false
		case observe:
			return true
		}
		now := s.now()
		err = s.opt.Store.Update(s.ctx, func(tx *store.Tx) error {
			if _, err := tx.Machine(mac); !errors.Is(err, store.ErrNotFound) {
				return err // registered meanwhile, or the store failed
			}
			m, err := touch(tx, mac, "", now)
			if err != nil {
				return err
			}
			_, err = tx.PutMachine(m)
			return err
		})
		if err != nil {
			s.logf("pxe: register %s: %v", mac, err)
		}
		return true
	}
}

func (s *Server) registered(mac string) (bool, error) {
	err := s.opt.Store.View(s.ctx, func(tx *store.Tx) error {
		_, err := tx.Machine(mac)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// PXEEvent logs what the proxyDHCP and TFTP server did and saw, and records
// what matters to the fleet: an answer to a machine (netboot.dhcp.offered,
// the first step of its timeline) and a DHCP server that already sends boot
// options or another proxyDHCP (netboot.dhcp.conflict, a warning).
func (s *Server) PXEEvent(e netboot.Event) {
	now := s.now()
	var ev *store.Event
	switch e.Kind {
	case netboot.KindConflict:
		s.logf("warning: %s", e)
		ip := ""
		if e.IP != nil {
			ip = e.IP.String()
		}
		ev = &store.Event{Kind: "netboot.dhcp.conflict", SubjectKind: "dhcp-server", SubjectID: ip, SourceIP: ip}
		if e.MAC != nil {
			ev.Details = `{"mac":"` + e.MAC.String() + `"}`
		}
	case netboot.KindAnswer:
		s.logf("pxe: %s", e)
		mac, err := wire.NormalizeMAC(e.MAC.String())
		if err != nil {
			return
		}
		d, _ := json.Marshal(map[string]any{"firmware": e.Firmware.String(), "boot_file": e.File})
		ev = &store.Event{Kind: "netboot.dhcp.offered", SubjectKind: "machine", SubjectID: mac, Actor: "pxe-client", Details: string(d)}
	default:
		s.logf("pxe: %s", e)
		return
	}
	ev.TS, ev.Summary = now, e.Text
	if ev.Actor == "" {
		ev.Actor = "bty-serve"
	}
	if err := s.opt.Store.Update(s.ctx, func(tx *store.Tx) error { return tx.AddEvent(ev) }); err != nil {
		s.logf("pxe: record %s: %v", ev.Kind, err)
	}
}

// stampDHCP sets the DHCP step of cycle c, offered now: bty's first DHCP
// answer to the machine since its previous boot's offer (which is not this
// one's: the caller records that after) and within dhcpWindow. A machine
// that bty's proxyDHCP did not answer has no such step.
func stampDHCP(tx *store.Tx, c *store.Cycle, now time.Time) error {
	since := now.Add(-dhcpWindow)
	prev, err := tx.Offer(c.MAC, "")
	switch {
	case err == nil && prev.CreatedAt.After(since):
		since = prev.CreatedAt
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return err
	}
	// A boot gets a handful of answers: the firmware's PXE, iPXE's.
	evs, err := tx.Events(store.EventFilter{Kind: "netboot.dhcp.offered", SubjectKind: "machine", SubjectID: c.MAC, Limit: 16})
	if err != nil {
		return err
	}
	var first time.Time
	for _, e := range evs { // newest first
		if !e.TS.After(since) {
			break
		}
		first = e.TS
	}
	if first.IsZero() {
		return nil
	}
	c.DHCPAt = first
	return tx.PutCycle(c)
}

// openBootFile opens a file of the live environment (BootDir), or, for the
// EFI iPXE binaries that UEFI HTTP boot fetches, of IPXEDir when BootDir
// has no such file.
func (s *Server) openBootFile(name string) (*os.File, error) {
	err := os.ErrNotExist
	if s.opt.BootDir != "" {
		f, err := os.Open(filepath.Join(s.opt.BootDir, name))
		if err == nil || !errors.Is(err, os.ErrNotExist) {
			return f, err
		}
	}
	if s.opt.IPXEDir != "" && (name == "ipxe.efi" || name == "snponly.efi") {
		return os.Open(filepath.Join(s.opt.IPXEDir, name))
	}
	return nil, err
}
