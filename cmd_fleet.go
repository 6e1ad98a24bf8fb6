package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"bty/fleet"
	"bty/server/web"
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
