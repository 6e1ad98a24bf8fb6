package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"bty/wire"
)

// bty fleet reflash: arm a reflash of each machine and, with --wait, follow
// its cycles until it is done, fails for good, or the timeout ends; the exit
// code says how it ended.

func (c *fleetCLI) reflash(ctx context.Context, args []string) error {
	var wait, noPower bool
	var timeout time.Duration
	var reason string
	fs := c.flags("reflash", "reflash MAC... [--wait] [--timeout D] [--reason TEXT] [--no-power]")
	fs.BoolVar(&wait, "wait", false, "wait until each flash is done or has failed for good")
	fs.DurationVar(&timeout, "timeout", 30*time.Minute, "with --wait: give up after this long (exit 124)")
	fs.StringVar(&reason, "reason", "", "why, for the event log (e.g. the CI job)")
	fs.BoolVar(&noPower, "no-power", false, "do not power-cycle: the flash happens at the next reboot")
	pos, err := c.parse(fs, args)
	if err != nil {
		return firstErr(err, nil)
	}
	if len(pos) == 0 {
		return usagef("bty fleet reflash takes one or more MACs")
	}
	armed := map[string]int64{}
	var macs []string
	for _, a := range pos {
		mac, err := macArg(a)
		if err != nil {
			return err
		}
		req := wire.Reflash{Reason: reason}
		if noPower {
			req.Power = new(bool)
		}
		var cy wire.Cycle
		if err := c.call(ctx, "POST", "/machines/"+mac+"/reflash", req, &cy); err != nil {
			return fmt.Errorf("%s: %w", mac, err)
		}
		fmt.Fprintf(c.e.stderr, "bty: %s: plan %d armed\n", mac, cy.ID)
		armed[mac] = cy.ID
		macs = append(macs, mac)
	}
	if !wait {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var first error
	for _, mac := range macs {
		if err := c.await(ctx, mac, armed[mac]); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// reflashError is a flash that ended badly; its class gives the exit code.
type reflashError struct {
	mac, msg string
	class    wire.Class
	timeout  bool
}

func (e *reflashError) Error() string { return e.mac + ": " + e.msg }

// await follows a machine's cycles from the armed one until one is done, the
// machine is quarantined, or ctx ends.
func (c *fleetCLI) await(ctx context.Context, mac string, from int64) error {
	for {
		var m wire.Machine
		err := c.call(ctx, "GET", "/machines/"+mac, nil, &m)
		if ctx.Err() != nil {
			return &reflashError{mac: mac, msg: "no result before the timeout (bty fleet show " + mac + ")", timeout: true}
		}
		if err != nil {
			fmt.Fprintf(c.e.stderr, "bty: %s: %v (trying again)\n", mac, err)
		} else if cy := m.Cycle; cy != nil && cy.ID >= from {
			switch {
			case cy.State == wire.CycleDone:
				fmt.Fprintf(c.e.stderr, "bty: %s: plan %d done: %s\n", mac, cy.ID, timeline(*cy))
				return nil
			case cy.State == wire.CycleSuperseded:
				return &reflashError{mac: mac, msg: fmt.Sprintf("plan %d superseded: %s", cy.ID, cy.Reason)}
			case m.Quarantine != nil && cy.State == wire.CycleFailed:
				return &reflashError{mac: mac, msg: fmt.Sprintf("plan %d failed (%s), the machine is quarantined: %s", cy.ID, cy.Reason, m.Quarantine.Reason), class: cy.Class}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
}

// reflashCode maps a reflash --wait failure to its exit code: 4 integrity,
// 5 source, 124 timeout, 1 any other failure.
func reflashCode(err error) (int, bool) {
	var re *reflashError
	if !errors.As(err, &re) {
		return 0, false
	}
	switch {
	case re.class == wire.ClassIntegrity:
		return exitIntegrity, true
	case re.class == wire.ClassSource:
		return exitSource, true
	case re.timeout:
		return exitTimeout, true
	}
	return exitIO, true
}
