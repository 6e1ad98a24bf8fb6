// Command bty puts a pre-built system image on a disk: fast, safely, and the same
// way every time. main is the composition root: it parses flags, wires the
// packages together, runs, and maps errors to exit codes (exit.go).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"bty/catalog"
)

func main() {
	// Keep the heap small: decoders allocate a dictionary per stream or block
	// (and the xz decoder an object per LZMA operation), and the garbage would
	// otherwise pile up to several times the live heap. Measured on the bench
	// xz image: 64 MiB makes the collector run so often that the flash takes
	// 20% longer; 80 MiB keeps peak RSS at 100 MiB. GOMEMLIMIT overrides this.
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(80 << 20)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// env is what a command needs from the process; tests substitute it.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

func run(args []string, stdout, stderr io.Writer) int {
	// SIGINT/SIGTERM cancel the context; the pipeline stops within a second and
	// the error maps to exit 130.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := env{stdout: stdout, stderr: stderr, getenv: os.Getenv}
	err := dispatch(ctx, e, args)
	code := exitCode(err)
	if err != nil && !isReported(err) {
		fmt.Fprintf(stderr, "bty: %v\n", err)
	}
	return code
}

// newResolver is how a command reaches images: the image root, the catalogs
// named with --catalog, and --plain-http for oras:// registries. A command
// builds one and hands it to everything it runs.
func newResolver(e env, catalogs []string, plainHTTP bool) *catalog.Resolver {
	return &catalog.Resolver{Catalogs: catalogs, ImageRoot: catalog.DefaultImageRoot(e.getenv), Registry: catalog.Registry{PlainHTTP: plainHTTP}}
}

// command is a subcommand: bty NAME args...
type command struct {
	name, summary string
	run           func(ctx context.Context, e env, args []string) error
}

func commands() []command {
	return []command{
		{"disks", "list disks with their safety verdicts", cmdDisks},
		{"images", "list the images of the image root and catalogs", cmdImages},
		{"catalog", "catalog check SRC: validate a catalog", cmdCatalog},
		{"serve", "serve images as an HTTP catalog; with --state, the fleet server", cmdServe},
		{"fleet", "manage a fleet server's machines: ls, show, set, reflash, events", cmdFleet},
		{"demo", "the wizard on built-in demo images, flashing a scratch file", cmdDemo},
		{"media", "build boot media: netboot files or a USB stick image", cmdMedia},
		{"help", "show the help of bty or of a command: bty help COMMAND", cmdHelp},
		{"version", "print the version, the commit and the Go version", cmdVersion},
	}
}

func isCommand(name string) bool {
	for _, c := range commands() {
		if c.name == name {
			return true
		}
	}
	return false
}

// dispatch runs the command that args name; without one (args empty or
// starting with a flag) it flashes, opens the wizard or follows a server.
func dispatch(ctx context.Context, e env, args []string) error {
	if len(args) > 0 {
		for _, c := range commands() {
			if args[0] == c.name {
				return c.run(ctx, e, args[1:])
			}
		}
		if !strings.HasPrefix(args[0], "-") {
			return usagef("unknown command %q (see bty --help)", args[0])
		}
	}
	return cmdFlash(ctx, e, args)
}
