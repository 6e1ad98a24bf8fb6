package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"text/tabwriter"

	"bty/catalog"
	"bty/ui"
)

// newFlagSet returns a FlagSet for a subcommand that prints its usage line and
// flags on --help.
func newFlagSet(e env, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: %s\n\nFlags:\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses the flags of a subcommand that takes no positional
// arguments. ok is false when the caller should return err: nil after --help,
// else a usage error.
func parseFlags(fs *flag.FlagSet, args []string) (ok bool, err error) {
	pos, err := parseArgs(fs, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return false, nil
	case err != nil:
		return false, err
	case len(pos) > 0:
		return false, usagef("unexpected argument %q (see bty %s --help)", pos[0], fs.Name())
	}
	return true, nil
}

// parseArgs parses flags that may come before or after the positional
// arguments, and returns the positional ones.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%v (see bty %s --help)", err, fs.Name())
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// cmdImages: bty images [--catalog SRC]... [--json]
func cmdImages(ctx context.Context, e env, args []string) error {
	var catalogs multiFlag
	var asJSON, plainHTTP bool
	fs := newFlagSet(e, "images", "bty images [--catalog SRC]... [--json]")
	fs.Var(&catalogs, "catalog", "catalog source (TOML file, http(s) URL, oras:// ref); repeatable")
	fs.BoolVar(&asJSON, "json", false, "print a JSON array")
	fs.BoolVar(&plainHTTP, "plain-http", false, "talk plain HTTP to oras:// registries that are not on loopback")
	if ok, err := parseFlags(fs, args); !ok {
		return err
	}
	root := catalog.DefaultImageRoot(e.getenv)
	r := &catalog.Resolver{Catalogs: catalogs, ImageRoot: root, Registry: catalog.Registry{PlainHTTP: plainHTTP}}
	rows, err := r.Images(ctx)
	if err != nil {
		return err
	}
	if _, err := os.Stat(root); err != nil && e.getenv("BTY_IMAGE_ROOT") != "" {
		fmt.Fprintf(e.stderr, "bty: image root %s: %v\n", root, err)
	}
	if asJSON {
		if rows == nil {
			rows = []catalog.Entry{}
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tFORMAT\tSIZE\tSHA256\tREF\tSOURCE")
	for _, row := range rows {
		format, size, sum := row.Format, "?", "unknown"
		if format == "" {
			format = "?"
		}
		if row.Size > 0 {
			size = ui.Bytes(row.Size)
		}
		if row.SHA256 != "" {
			sum = "known"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", row.Name, format, size, sum, row.Ref[:min(12, len(row.Ref))], row.From)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, row := range rows {
		if row.Note != "" {
			fmt.Fprintf(e.stderr, "bty: %s: %s\n", row.Name, row.Note)
		}
	}
	return nil
}

// checkResult is the JSON form of bty catalog check.
type checkResult struct {
	Source   string         `json:"source"`
	OK       bool           `json:"ok"`
	Images   int            `json:"images"`
	Problems []checkProblem `json:"problems,omitempty"`
	Error    string         `json:"error,omitempty"`
}

type checkProblem struct {
	Line    int    `json:"line,omitempty"`
	Image   string `json:"image,omitempty"`
	Message string `json:"message"`
}

// cmdCatalog: bty catalog check SRC [--json]
func cmdCatalog(ctx context.Context, e env, args []string) error {
	if len(args) == 0 || args[0] != "check" {
		return usagef("usage: bty catalog check SRC [--json]")
	}
	var asJSON, plainHTTP bool
	fs := newFlagSet(e, "catalog check", "bty catalog check SRC [--json]")
	fs.BoolVar(&asJSON, "json", false, "print the result as JSON")
	fs.BoolVar(&plainHTTP, "plain-http", false, "talk plain HTTP to an oras:// registry that is not on loopback")
	pos, err := parseArgs(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("bty catalog check takes one catalog source (a path, an http(s):// URL or an oras:// ref)")
	}
	src := pos[0]
	c, err := (&catalog.Resolver{Registry: catalog.Registry{PlainHTTP: plainHTTP}}).Load(ctx, src)
	res := checkResult{Source: src, OK: err == nil}
	var inv *catalog.InvalidError
	switch {
	case err == nil:
		res.Images = len(c.Images)
	case errors.As(err, &inv):
		for _, p := range inv.Problems {
			res.Problems = append(res.Problems, checkProblem{Line: p.Line, Image: p.Entry, Message: p.Msg})
		}
	default:
		res.Error = err.Error()
	}
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(res); jerr != nil {
			return jerr
		}
		if err != nil {
			return reported{err}
		}
		return nil
	}
	if err == nil {
		fmt.Fprintf(e.stdout, "%s: ok, %d images\n", src, res.Images)
		return nil
	}
	if inv == nil {
		return err
	}
	for _, p := range inv.Problems {
		fmt.Fprintln(e.stderr, p.String())
	}
	fmt.Fprintf(e.stderr, "bty: %s: %d problems: the catalog is refused\n", src, len(inv.Problems))
	return reported{err}
}

// displayAddr makes a wildcard listen address usable in a URL.
func displayAddr(a net.Addr) string {
	s := a.String()
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return s
	}
	if host == "" || host == "::" || host == "0.0.0.0" {
		if h, err := os.Hostname(); err == nil && !strings.ContainsAny(h, " /") {
			host = h
		}
	}
	return net.JoinHostPort(host, port)
}
