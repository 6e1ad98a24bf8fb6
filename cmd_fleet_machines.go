package main

// bty fleet's machine commands: ls, show, set, rm.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"bty/units"
	"bty/wire"
)

func macArg(s string) (string, error) {
	mac, err := wire.NormalizeMAC(s)
	if err != nil {
		return "", usagef("%v", err)
	}
	return mac, nil
}

func ago(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return time.Since(*t).Round(time.Second).String() + " ago"
}

func (c *fleetCLI) ls(ctx context.Context, args []string) error {
	var asJSON bool
	var label string
	fs := c.flags("ls", "ls [--label L] [--json]")
	fs.BoolVar(&asJSON, "json", false, "print a JSON array")
	fs.StringVar(&label, "label", "", "only the machines with this label")
	if pos, err := c.parse(fs, args); err != nil || len(pos) > 0 {
		return firstErr(err, pos)
	}
	var ms []wire.Machine
	if err := c.call(ctx, "GET", "/machines?label="+url.QueryEscape(label), nil, &ms); err != nil {
		return err
	}
	if asJSON {
		return c.printJSON(ms)
	}
	tw := tabwriter.NewWriter(c.e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MAC\tMODE\tSTATE\tIMAGE\tDISK\tLABELS\tLAST SEEN")
	for _, m := range ms {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.MAC, m.BootMode, m.State, imageName(m), orDash(m.TargetDiskSerial), strings.Join(m.Labels, ","), ago(m.LastSeenAt))
	}
	return tw.Flush()
}

func firstErr(err error, pos []string) error {
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	return usagef("unexpected argument %q", pos[0])
}

func imageName(m wire.Machine) string {
	switch {
	case m.Image != nil:
		return m.Image.Name
	case m.BtyImageRef != nil:
		return "ref:" + (*m.BtyImageRef)[:12] + " (in no catalog)"
	}
	return "-"
}

func orDash(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

func (c *fleetCLI) show(ctx context.Context, args []string) error {
	var asJSON bool
	fs := c.flags("show", "show MAC [--json]")
	fs.BoolVar(&asJSON, "json", false, "print JSON: the machine and its cycles")
	pos, err := c.parse(fs, args)
	if err != nil {
		return firstErr(err, nil)
	}
	if len(pos) != 1 {
		return usagef("bty fleet show takes one MAC")
	}
	mac, err := macArg(pos[0])
	if err != nil {
		return err
	}
	var m wire.Machine
	var cycles []wire.Cycle
	if err := c.call(ctx, "GET", "/machines/"+mac, nil, &m); err != nil {
		return err
	}
	if err := c.call(ctx, "GET", "/machines/"+mac+"/cycles?limit=10", nil, &cycles); err != nil {
		return err
	}
	if asJSON {
		return c.printJSON(struct {
			Machine wire.Machine `json:"machine"`
			Cycles  []wire.Cycle `json:"cycles"`
		}{m, cycles})
	}
	w := c.e.stdout
	fmt.Fprintf(w, "%s  %s, %s\n", m.MAC, m.BootMode, m.State)
	assigned := imageName(m)
	if m.Image != nil && m.Image.SHA256 != "" {
		assigned += "  sha256 " + m.Image.SHA256[:12]
	}
	fmt.Fprintf(w, "  assigned:  %s to serial %s\n", assigned, orDash(m.TargetDiskSerial))
	if m.Disk != nil {
		fmt.Fprintf(w, "  on disk:   sha256 %s on serial %s (plan %d, %s)\n", m.Disk.SHA256[:min(12, len(m.Disk.SHA256))], m.Disk.Serial, m.Disk.PlanID, m.Disk.At.Local().Format(time.DateTime))
	} else {
		fmt.Fprintf(w, "  on disk:   unknown (no verified flash yet)\n")
	}
	if m.Quarantine != nil {
		fmt.Fprintf(w, "  QUARANTINED since %s: %s (bty fleet reflash %s releases it)\n", m.Quarantine.At.Local().Format(time.DateTime), m.Quarantine.Reason, m.MAC)
	}
	fmt.Fprintf(w, "  labels:    %s\n  power:     %s\n  last seen: %s from %s\n", strings.Join(m.Labels, ", "), orDash(&m.Power), ago(m.LastSeenAt), orDash(m.LastSeenIP))
	if m.Delta {
		fmt.Fprintf(w, "  reflash:   delta (only the blocks the disk lacks)\n")
	}
	for _, d := range m.KnownDisks {
		fmt.Fprintf(w, "  disk:      %s %s %s serial %s\n", d.Path, d.Size, d.Model, d.Serial)
	}
	if len(cycles) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PLAN\tKIND\tTRIGGER\tTRY\tSTATE\tSTARTED\tTIMELINE\tREASON")
	for _, cy := range cycles {
		note := cy.Reason
		if cy.BytesFetched != nil {
			note = fmt.Sprintf("delta: %s fetched, %s written", units.Bytes(*cy.BytesFetched), units.Bytes(cy.BytesWritten))
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", cy.ID, cy.Kind, cy.Trigger, cy.Attempt, cy.State, cy.CreatedAt.Local().Format(time.DateTime), timeline(cy), note)
	}
	return tw.Flush()
}

// timeline writes a cycle's steps with the time each took after the one
// before: dhcp +0s, offered +9s, booted +21s, plan +35s, writing +2s, done
// +40s. A cycle that a boot started begins at bty's DHCP answer to it, which
// came before the cycle was made.
func timeline(c wire.Cycle) string {
	var parts []string
	prev := c.CreatedAt
	if c.DHCPAt != nil && c.DHCPAt.Before(prev) {
		prev = *c.DHCPAt
	}
	for _, s := range []struct {
		name string
		t    *time.Time
	}{{"dhcp", c.DHCPAt}, {"offered", c.OfferedAt}, {"booted", c.BootedAt}, {"plan", c.PlannedAt}, {"writing", c.WriteStartedAt}, {c.State, c.EndedAt}} {
		if s.t == nil {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s +%s", s.name, s.t.Sub(prev).Round(time.Second)))
		prev = *s.t
	}
	return strings.Join(parts, ", ")
}

func (c *fleetCLI) set(ctx context.Context, args []string) error {
	var image, disk, mode, power, delta string
	var labels multiFlag
	var reboot, asJSON bool
	fs := c.flags("set", "set MAC|--label L [--image NAME|REF] [--disk serial:S] [--mode MODE] [--label L]... [--power DRIVER] [--delta on|off] [--reboot]")
	fs.StringVar(&image, "image", "", "the image to flash: a name of the server's images, or a ref")
	fs.StringVar(&disk, "disk", "", "the target disk, serial:S")
	fs.StringVar(&mode, "mode", "", "the boot mode: "+strings.Join(wire.BootModes[:5], ", "))
	fs.Var(&labels, "label", "with MAC: a label to set (repeatable, replaces the labels); without: the machines to change")
	fs.StringVar(&power, "power", "", "power driver: cmd:COMMAND, wol, wol:HOST:PORT, or none")
	fs.StringVar(&delta, "delta", "", "on: reflash by writing only the blocks the disk lacks (docs/delta.md); off: write the whole image")
	fs.BoolVar(&reboot, "reboot", false, "reflash the machines whose disks no longer hold their image now, through their power drivers")
	fs.BoolVar(&asJSON, "json", false, "print the changed machines as JSON")
	pos, err := c.parse(fs, args)
	if err != nil {
		return firstErr(err, nil)
	}
	patch := map[string]any{}
	var macs []string
	switch {
	case len(pos) == 1:
		mac, err := macArg(pos[0])
		if err != nil {
			return err
		}
		macs = []string{mac}
		if labels != nil {
			patch["labels"] = []string(labels)
		}
	case len(pos) == 0 && len(labels) == 1:
		var ms []wire.Machine
		if err := c.call(ctx, "GET", "/machines?label="+url.QueryEscape(labels[0]), nil, &ms); err != nil {
			return err
		}
		if len(ms) == 0 {
			return usagef("no machine has the label %q (bty fleet ls shows the labels)", labels[0])
		}
		for _, m := range ms {
			macs = append(macs, m.MAC)
		}
	default:
		return usagef("bty fleet set takes one MAC, or one --label to pick machines")
	}
	if image != "" {
		ref, err := c.findImage(ctx, image)
		if err != nil {
			return err
		}
		patch["bty_image_ref"] = ref
	}
	if disk != "" {
		serial, ok := strings.CutPrefix(disk, "serial:")
		if !ok || serial == "" {
			return usagef("--disk %q: name the target by serial, serial:S (bty disks shows serials)", disk)
		}
		patch["target_disk_serial"] = serial
	}
	if mode != "" {
		if !slices.Contains(wire.BootModes, mode) {
			return usagef("--mode %q: use one of %s", mode, strings.Join(wire.BootModes[:5], ", "))
		}
		patch["boot_mode"] = mode
	}
	if power != "" {
		if power == "none" {
			power = ""
		}
		if err := wire.ValidPower(power); err != nil {
			return usagef("--power: %v", err)
		}
		patch["power"] = power
	}
	switch delta {
	case "":
	case "on", "off":
		patch["delta"] = delta == "on"
	default:
		return usagef("--delta %q: say on or off", delta)
	}
	if len(patch) == 0 && !reboot {
		return usagef("bty fleet set: nothing to change (give --image, --disk, --mode, --label, --power or --delta)")
	}
	var out []wire.Machine
	for _, mac := range macs {
		var m wire.Machine
		if err := c.call(ctx, "PATCH", "/machines/"+mac, patch, &m); err != nil {
			return fmt.Errorf("%s: %w", mac, err)
		}
		out = append(out, m)
		if reboot && m.State == wire.StateStale {
			var cy wire.Cycle
			if err := c.call(ctx, "POST", "/machines/"+mac+"/reflash", wire.Reflash{Reason: "bty fleet set --reboot"}, &cy); err != nil {
				return fmt.Errorf("%s: %w", mac, err)
			}
			fmt.Fprintf(c.e.stderr, "bty: %s: plan %d armed\n", mac, cy.ID)
		}
	}
	if asJSON {
		return c.printJSON(out)
	}
	for _, m := range out {
		fmt.Fprintf(c.e.stdout, "%s  %s, %s, image %s, disk %s\n", m.MAC, m.BootMode, m.State, imageName(m), orDash(m.TargetDiskSerial))
	}
	return nil
}

// findImage turns a name or ref of the server's images into a ref.
func (c *fleetCLI) findImage(ctx context.Context, s string) (string, error) {
	var imgs []wire.ImageEntry
	if err := c.call(ctx, "GET", "/images", nil, &imgs); err != nil {
		return "", err
	}
	ref, isRef := wire.NormalizeSHA256(s)
	for _, im := range imgs {
		if im.Name == s || (isRef && im.Ref == ref) {
			return im.Ref, nil
		}
	}
	var names []string
	for _, im := range imgs {
		names = append(names, im.Name)
	}
	return "", usagef("--image %q: the server has no such image (it has: %s)", s, strings.Join(names, ", "))
}

func (c *fleetCLI) rm(ctx context.Context, args []string) error {
	pos, err := c.parse(c.flags("rm", "rm MAC"), args)
	if err != nil {
		return firstErr(err, nil)
	}
	if len(pos) != 1 {
		return usagef("bty fleet rm takes one MAC")
	}
	mac, err := macArg(pos[0])
	if err != nil {
		return err
	}
	return c.call(ctx, "DELETE", "/machines/"+mac, nil, nil)
}
