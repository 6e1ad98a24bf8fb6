package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"bty/catalog"
	"bty/fleet"
	"bty/wire"
)

// serverMode reports whether this run is server-driven: --server was given, or
// nothing was asked on the command line and the kernel's has bty.server=.
func serverMode(f *flashFlags, cmdline fleet.Cmdline) bool {
	return f.server != "" || (f.image == "" && f.disk == "" && cmdline["bty.server"] != "")
}

func cmdlinePath(e env) string {
	if p := e.getenv("BTY_CMDLINE"); p != "" {
		return p
	}
	return "/proc/cmdline"
}

// followServer follows the server's plan for this machine (docs/server-protocol.md).
func followServer(ctx context.Context, e env, f *flashFlags, res *catalog.Resolver, cmdline fleet.Cmdline) error {
	cfg, err := fleet.NewConfig(f.server, f.mac, cmdline)
	if err != nil {
		return usagef("%v", err)
	}
	log := e.stderr
	if errf, ok := e.stderr.(*os.File); ok {
		log = fleet.ConsoleWriter(errf, e.getenv("BTY_CONSOLE"))
	}
	r := &fleet.Runner{Client: &fleet.Client{Config: cfg}, Resolver: res, Roots: diskRoots(e), Log: log, Classify: failureClass}
	out := r.Run(ctx)
	switch out.Action {
	case fleet.Exit:
		return nil
	case fleet.Reboot:
		return reboot(log, f.noReboot)
	}
	// Wizard, with the server's catalog and, after a failed flash, its choices.
	// Without a terminal the failure's exit code is what a script sees.
	if _, err := wizardTerminal(e); err != nil {
		if out.Err != nil {
			return reported{out.Err}
		}
		return fmt.Errorf("%w: %s", errFallback, out.Why)
	}
	w := *f
	w.catalogs, w.image, w.disk = []string{out.Catalog}, out.Image, out.Disk
	return runWizard(ctx, e, &w, res)
}

// reboot syncs and reboots the machine, or with --no-reboot says it would.
func reboot(log io.Writer, dryRun bool) error {
	if dryRun {
		fmt.Fprintln(log, "bty: would sync and reboot now (--no-reboot)")
		return nil
	}
	fmt.Fprintln(log, "bty: syncing and rebooting")
	return rebootSystem()
}

// failureClass names a failure's category for the server, as its exit code
// does.
func failureClass(err error) wire.Class {
	switch exitCode(err) {
	case exitIntegrity:
		return wire.ClassIntegrity
	case exitSource:
		return wire.ClassSource
	case exitRefused:
		return wire.ClassRefused
	case exitUsage:
		return wire.ClassUsage
	case exitCancelled:
		return wire.ClassCancelled
	}
	return wire.ClassIO
}
