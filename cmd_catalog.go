package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"

	"bty/catalog"
)

// checkResult is the JSON form of bty catalog check.
type checkResult struct {
	Source   string         `json:"source"`
	OK       bool           `json:"ok"`
	Images   int            `json:"images"`
	Pending  int            `json:"pending_images,omitempty"`
	Problems []checkProblem `json:"problems,omitempty"`
	Warnings []checkProblem `json:"warnings,omitempty"`
	Error    string         `json:"error,omitempty"`
}

type checkProblem struct {
	Line    int    `json:"line,omitempty"`
	Image   string `json:"image,omitempty"`
	Message string `json:"message"`
}

func checkProblems(ps []catalog.Problem) []checkProblem {
	var out []checkProblem
	for _, p := range ps {
		out = append(out, checkProblem{Line: p.Line, Image: p.Entry, Message: p.Msg})
	}
	return out
}

// cmdCatalog: bty catalog check SRC [--json]; bty catalog --help is the
// help of check, its one subcommand.
func cmdCatalog(ctx context.Context, e env, args []string) error {
	switch {
	case len(args) == 0:
		return usagef("catalog needs a subcommand: check (see bty catalog --help)")
	case args[0] == "check":
		return cmdCatalogCheck(ctx, e, args[1:])
	case isHelpFlag(args[0]):
		return cmdCatalogCheck(ctx, e, args[:1])
	case strings.HasPrefix(args[0], "-"):
		return usagef("catalog needs a subcommand before %s: check (see bty catalog --help)", args[0])
	}
	return usagef("unknown catalog subcommand %q: say check (see bty catalog --help)", args[0])
}

func cmdCatalogCheck(ctx context.Context, e env, args []string) error {
	var asJSON, plainHTTP, strict bool
	fs := newFlagSet(e, "catalog check", `bty catalog check SRC [--strict] [--json]

Reads a catalog (a path, an http(s):// URL or an oras:// reference) as bty
would, and lists every problem in it (exit 2), and warnings about what is
valid but probably a mistake: unknown keys and tables (with the key they
probably mean), images without sha256, a format bty does not know. Loading a
catalog to flash from ignores what the warnings are about.`)
	fs.BoolVar(&strict, "strict", false, "refuse a catalog with warnings too (exit 2)")
	fs.BoolVar(&asJSON, "json", false, "print the result as JSON")
	fs.BoolVar(&plainHTTP, "plain-http", false, "talk plain HTTP to an oras:// registry that is not on loopback")
	pos, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("catalog check takes one catalog source, a path, an http(s):// URL or an oras:// ref (see bty catalog check --help)")
	}
	src := pos[0]
	c, warns, err := newResolver(e, nil, plainHTTP).Check(ctx, src)
	byStrict := err == nil && strict && len(warns) > 0
	if byStrict {
		err = &catalog.InvalidError{Source: src, Problems: warns}
		warns = nil
	}
	res := checkResult{Source: src, OK: err == nil, Warnings: checkProblems(warns)}
	var inv *catalog.InvalidError
	switch {
	case err == nil:
		for _, im := range c.Images {
			if im.Pending {
				res.Pending++
			} else {
				res.Images++
			}
		}
	case errors.As(err, &inv):
		res.Problems = checkProblems(inv.Problems)
	default:
		res.Error = err.Error()
	}
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if jerr := enc.Encode(res); jerr != nil {
			return jerr
		}
		if err != nil {
			return reported{err}
		}
		return nil
	}
	for _, w := range warns {
		fmt.Fprintln(e.stderr, "warning: "+w.String())
	}
	if err == nil {
		summary := plural(res.Images, "image")
		if res.Pending > 0 {
			summary += fmt.Sprintf(", %d pending", res.Pending)
		}
		if len(warns) > 0 {
			summary += ", " + plural(len(warns), "warning")
		}
		fmt.Fprintf(e.stdout, "%s: ok, %s\n", src, summary)
		return nil
	}
	if inv == nil {
		return err
	}
	for _, p := range inv.Problems {
		fmt.Fprintln(e.stderr, p.String())
	}
	if byStrict {
		fmt.Fprintf(e.stderr, "bty: %s: %s: the catalog is refused (--strict)\n", src, plural(len(inv.Problems), "warning"))
	} else {
		fmt.Fprintf(e.stderr, "bty: %s: %s: the catalog is refused\n", src, plural(len(inv.Problems), "problem"))
	}
	return reported{err}
}
