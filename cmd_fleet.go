package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"bty/fleet"
	"bty/server/web"
	"bty/units"
	"bty/wire"
)

const fleetUsage = `Usage: bty fleet [--server URL] [--token T] COMMAND ...

  ls [--label L] [--json]                 the machines
  show MAC [--json]                       one machine, with its latest cycles
  set MAC|--label L [--image NAME|REF] [--disk serial:S] [--mode MODE]
      [--label L]... [--power DRIVER|none] [--delta on|off] [--reboot]
                                          change machines (with MAC, --label sets
                                          its labels; without, one --label picks
                                          the machines to change)
  reflash MAC... [--wait] [--timeout D] [--reason TEXT] [--no-power]
                                          flash again now; --wait exits 0 when
                                          done, 4 integrity, 5 source, 1 other
                                          failure, 124 timeout
  rollout start --label L --image NAME [--max-parallel N] [--max-failures M]
                                          promote an image a few machines at a
                                          time (the others boot their disk until
                                          their turn); stops past M failures
  rollout status ID|--label L [--wait]    its machines; --wait exits 0 when done,
                                          1 stopped or cancelled
  rollout ls [--all] | pause|resume|cancel ID|--label L
  cache ls | warm NAME... [--wait] | rm NAME
                                          the server's image cache (--cache)
  rm MAC                                  forget a machine
  events [--machine MAC] [--kind K] [--limit N] [--follow] [--json]
  token create NAME | token revoke NAME   API tokens (create prints the token)
  password                                set the web UI's password (typed twice
                                          at a terminal, else the first line of
                                          standard input)

The server is --server or $BTY_SERVER (http://host:8080), the token --token
or $BTY_TOKEN (the server's STATE/admin.token, or bty fleet token create).
Modes: ipxe-exit bty-flash-always bty-flash-once bty-tui bty-inventory.
Power drivers: cmd:COMMAND (run with BTY_MAC, BTY_POWER_ACTION), wol, wol:HOST:PORT.
`

// exitTimeout is reflash --wait's exit code when the time is up (timeout(1)'s).
const exitTimeout = 124

// fleetCLI talks to a fleet server's admin API.
type fleetCLI struct {
	e      env
	server string
	token  string
	http   *http.Client
}

// cmdFleet: bty fleet COMMAND ...
func cmdFleet(ctx context.Context, e env, args []string) error {
	c := &fleetCLI{e: e, server: e.getenv("BTY_SERVER"), token: e.getenv("BTY_TOKEN"), http: &http.Client{Timeout: 30 * time.Second}}
	// Global flags before the command.
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch a := args[0]; {
		case a == "-h" || a == "--help" || a == "help":
			fmt.Fprint(e.stderr, fleetUsage)
			return nil
		case (a == "--server" || a == "--token") && len(args) > 1:
			c.setGlobal(a, args[1])
			args = args[2:]
		case strings.HasPrefix(a, "--server=") || strings.HasPrefix(a, "--token="):
			k, v, _ := strings.Cut(a, "=")
			c.setGlobal(k, v)
			args = args[1:]
		default:
			return usagef("bty fleet: unknown flag %s (see bty fleet --help)", a)
		}
	}
	if len(args) == 0 {
		fmt.Fprint(e.stderr, fleetUsage)
		return usagef("bty fleet: say which command")
	}
	cmds := map[string]func(context.Context, []string) error{
		"ls": c.ls, "show": c.show, "set": c.set, "reflash": c.reflash, "rm": c.rm, "events": c.events, "token": c.tokenCmd,
		"password": c.password, "rollout": c.rollout, "cache": c.cacheCmd,
	}
	run, ok := cmds[args[0]]
	if !ok {
		return usagef("bty fleet: unknown command %q (see bty fleet --help)", args[0])
	}
	return run(ctx, args[1:])
}

func (c *fleetCLI) setGlobal(k, v string) {
	if k == "--server" {
		c.server = v
	} else {
		c.token = v
	}
}

// flags returns a FlagSet for a fleet command with --server and --token.
func (c *fleetCLI) flags(name, usage string) *flagSet {
	fs := newFlagSet(c.e, "fleet "+name, "bty fleet "+usage)
	fs.StringVar(&c.server, "server", c.server, "the fleet server's URL (default $BTY_SERVER)")
	fs.StringVar(&c.token, "token", c.token, "an API token (default $BTY_TOKEN)")
	return fs
}

// parse parses a command's flags and checks the server and token.
func (c *fleetCLI) parse(fs *flagSet, args []string) ([]string, error) {
	pos, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	if c.server == "" {
		return nil, usagef("no server: give --server URL or set BTY_SERVER")
	}
	if c.server, err = fleet.NormalizeServer(c.server); err != nil {
		return nil, usagef("%v", err)
	}
	if c.token == "" {
		return nil, usagef("no token: give --token T or set BTY_TOKEN (the server's STATE/admin.token)")
	}
	return pos, nil
}

// apiError is an answer of the server that is not a success.
type apiError struct {
	code   int
	detail string
}

func (e *apiError) Error() string { return e.detail }

func (e *apiError) Unwrap() error {
	if e.code/100 == 4 {
		return errUsage // the request is wrong: the server says why
	}
	return nil
}

// call sends a request to the API and decodes a JSON answer into out.
func (c *fleetCLI) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.server+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, c.server+path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, c.server+path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e wire.Error
		if json.Unmarshal(b, &e) != nil || e.Detail == "" {
			e.Detail = strings.TrimSpace(string(b))
		}
		return &apiError{resp.StatusCode, fmt.Sprintf("%s: %s", resp.Status, e.Detail)}
	}
	if out != nil && len(b) > 0 {
		return json.Unmarshal(b, out)
	}
	return nil
}

func (c *fleetCLI) printJSON(v any) error {
	enc := json.NewEncoder(c.e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

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

func (c *fleetCLI) events(ctx context.Context, args []string) error {
	var follow, asJSON bool
	var machine, kind string
	var limit int
	fs := c.flags("events", "events [--machine MAC] [--kind K] [--limit N] [--follow] [--json]")
	fs.BoolVar(&follow, "follow", false, "keep printing new events")
	fs.BoolVar(&asJSON, "json", false, "one JSON object per line")
	fs.StringVar(&machine, "machine", "", "only this machine's")
	fs.StringVar(&kind, "kind", "", "only this kind, e.g. machine.flashed")
	fs.IntVar(&limit, "limit", 20, "how many of the latest to print first")
	if pos, err := c.parse(fs, args); err != nil || len(pos) > 0 {
		return firstErr(err, pos)
	}
	q := url.Values{}
	if machine != "" {
		mac, err := macArg(machine)
		if err != nil {
			return err
		}
		q.Set("subject_id", mac)
	}
	if kind != "" {
		q.Set("kind", kind)
	}
	q.Set("limit", fmt.Sprint(min(max(limit, 1), 500)))
	var evs wire.Events
	if err := c.call(ctx, "GET", "/events?"+q.Encode(), nil, &evs); err != nil {
		return err
	}
	slices.Reverse(evs.Events)
	var last int64
	for {
		for _, ev := range evs.Events {
			last = max(last, ev.ID)
			if asJSON {
				b, _ := json.Marshal(ev)
				fmt.Fprintf(c.e.stdout, "%s\n", b)
			} else {
				fmt.Fprintf(c.e.stdout, "%s  %-26s %-17s %s\n", ev.TS.Local().Format(time.DateTime), ev.Kind, ev.SubjectID, ev.Summary)
			}
		}
		if !follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
		q.Set("after_id", fmt.Sprint(last))
		q.Set("limit", "500")
		evs = wire.Events{}
		if err := c.call(ctx, "GET", "/events?"+q.Encode(), nil, &evs); err != nil && ctx.Err() == nil {
			fmt.Fprintf(c.e.stderr, "bty: %v (trying again)\n", err)
		}
	}
}

func (c *fleetCLI) tokenCmd(ctx context.Context, args []string) error {
	pos, err := c.parse(c.flags("token", "token create NAME | token revoke NAME"), args)
	if err != nil {
		return firstErr(err, nil)
	}
	if len(pos) != 2 || (pos[0] != "create" && pos[0] != "revoke") {
		return usagef("bty fleet token create NAME | bty fleet token revoke NAME")
	}
	if pos[0] == "revoke" {
		return c.call(ctx, "DELETE", "/tokens/"+url.PathEscape(pos[1]), nil, nil)
	}
	var tok wire.Token
	if err := c.call(ctx, "POST", "/tokens", wire.Token{Name: pos[1]}, &tok); err != nil {
		return err
	}
	fmt.Fprintln(c.e.stdout, tok.Token)
	fmt.Fprintf(c.e.stderr, "bty: token %s created; it is shown once: keep it (BTY_TOKEN)\n", tok.Name)
	return nil
}

// password sets the web UI's password (PUT /admin/password): typed twice
// without echo at a terminal, else the first line of standard input.
func (c *fleetCLI) password(ctx context.Context, args []string) error {
	pos, err := c.parse(c.flags("password", "password < FILE"), args)
	if err != nil || len(pos) > 0 {
		return firstErr(err, pos)
	}
	var pw string
	if isTerminal(os.Stdin) {
		var again []byte
		fmt.Fprint(c.e.stderr, "New password for the web UI: ")
		b, err := readPassword(os.Stdin)
		if err == nil {
			fmt.Fprint(c.e.stderr, "\nAgain: ")
			again, err = readPassword(os.Stdin)
		}
		fmt.Fprintln(c.e.stderr)
		if err != nil {
			return fmt.Errorf("read the password: %w", err)
		}
		if string(b) != string(again) {
			return usagef("the two passwords differ: type the same one twice")
		}
		pw = string(b)
	} else {
		line, err := bufio.NewReader(io.LimitReader(os.Stdin, 4096)).ReadString('\n')
		if err != nil && err != io.EOF {
			return fmt.Errorf("read the password from standard input: %w", err)
		}
		pw = strings.TrimRight(line, "\r\n")
	}
	if err := web.ValidPassword(pw); err != nil {
		return usagef("%v: give another", err)
	}
	if err := c.call(ctx, "PUT", "/admin/password", wire.Password{Password: pw}, nil); err != nil {
		return err
	}
	fmt.Fprintln(c.e.stderr, "bty: the web UI's password is set; sessions that used the old one have ended")
	return nil
}
