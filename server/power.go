package server

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"

	"bty/server/store"
)

// powerTimeout bounds one power action (an ipmitool call, a PDU script).
const powerTimeout = 2 * time.Minute

// topicWake is the store notice of a reflash of a Wake-on-LAN machine: every
// server on the database sends the magic packet too, since a broadcast only
// reaches the segment of the server that sends it, and the reflash may have
// come to another segment's server. Its detail is the id of the server that
// armed the cycle and the MAC. Other drivers (cmd:) run once, on that server.
const topicWake = "wake"

func isWOL(driver string) bool { return driver == "wol" || strings.HasPrefix(driver, "wol:") }

// wakeFor answers a topicWake notice of another server: the machine's wol
// driver is run here too (a second magic packet wakes nothing twice).
func (s *Server) wakeFor(ctx context.Context, detail string) {
	from, mac, _ := strings.Cut(detail, " ")
	if from == s.id {
		return
	}
	var m *store.Machine
	if err := s.opt.Store.View(ctx, func(tx *store.Tx) (err error) {
		m, err = tx.Machine(mac)
		return err
	}); err != nil {
		s.logf("wake %s for another server: %v", mac, err)
		return
	}
	if isWOL(m.Power) {
		s.powerCycle(mac, m.Power, "reflash through another server")
	}
}

// powerCycle runs the machine's power driver in the background and logs the
// outcome (power.cycled or power.failed). Drivers: "cmd:COMMAND" runs
// COMMAND with sh -c, BTY_MAC and BTY_POWER_ACTION=cycle in its environment;
// "wol" sends a Wake-on-LAN magic packet to 255.255.255.255:9, "wol:HOST:PORT"
// to that address (a machine that is off wakes up; one that runs is not
// reset).
func (s *Server) powerCycle(mac, driver, why string) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		ctx, cancel := context.WithTimeout(s.ctx, powerTimeout)
		defer cancel()
		out, err := runPower(ctx, driver, mac, "cycle")
		kind, summary := "power.cycled", fmt.Sprintf("%s power-cycled (%s)", mac, why)
		details := map[string]any{"driver": driver, "reason": why}
		if out != "" {
			details["output"] = out
		}
		if err != nil {
			kind, summary = "power.failed", fmt.Sprintf("%s: power driver failed: %v", mac, err)
			details["error"] = err.Error()
		}
		s.metrics.power(err == nil)
		now := s.now()
		s.opt.Store.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
			return event(tx, now, kind, mac, "bty-serve", "", summary, details)
		})
	}()
}

// runPower performs action with driver for mac, and returns the command's
// output (at most 1 KiB).
func runPower(ctx context.Context, driver, mac, action string) (string, error) {
	kind, arg, _ := strings.Cut(driver, ":")
	switch kind {
	case "cmd":
		cmd := exec.CommandContext(ctx, "sh", "-c", arg)
		cmd.Env = append(os.Environ(), "BTY_MAC="+mac, "BTY_POWER_ACTION="+action)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		s := strings.TrimSpace(out.String())
		if len(s) > 1024 {
			s = s[:1024]
		}
		if err != nil {
			return s, fmt.Errorf("%s: %w", arg, err)
		}
		return s, nil
	case "wol":
		addr := "255.255.255.255:9"
		if arg != "" {
			addr = arg
		}
		return "", wake(addr, mac)
	}
	return "", fmt.Errorf("unknown power driver %q", driver)
}

// wake sends a Wake-on-LAN magic packet for mac to addr: six 0xff, then the
// MAC sixteen times.
func wake(addr, mac string) error {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return err
	}
	pkt := bytes.Repeat([]byte{0xff}, 6)
	for range 16 {
		pkt = append(pkt, hw...)
	}
	c, err := net.Dial("udp", addr)
	if err != nil {
		return fmt.Errorf("wake-on-lan to %s: %w", addr, err)
	}
	defer c.Close()
	if _, err := c.Write(pkt); err != nil {
		return fmt.Errorf("wake-on-lan to %s: %w", addr, err)
	}
	return nil
}
