package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"bty/catalog"
	"bty/disks"
	"bty/ui"
)

// runWizard runs the TUI: bty without --yes. --catalog skips the source
// screen; --image and --disk pre-fill the choices, and with both the wizard
// opens at the confirmation. The wizard reaches images through res, as
// headless mode does, in the places it names. Reboot is offered on the done screen only in the
// live environment, and happens here after the TUI has released the terminal.
func runWizard(ctx context.Context, e env, f *flashFlags, res *catalog.Resolver) error {
	out, err := wizardTerminal(e)
	if err != nil {
		return err
	}
	targets := ui.DiskTargets(diskRoots(e))
	if f.disk != "" && isFileTarget(f.disk) {
		// --disk names a regular file (a disk image being produced): offer it
		// beside the disks so the wizard can open at the confirmation.
		file, list := ui.FileTarget(f.disk, "regular file"), targets
		targets = func(c disks.Check) ([]ui.Target, error) {
			ts, err := list(c)
			return append(ts, file), err
		}
	}
	o, err := ui.Run(ctx, ui.Options{
		ImageRoot:      catalog.DefaultImageRoot(e.getenv),
		Catalogs:       f.catalogs,
		Resolver:       ui.CatalogResolver(res),
		DefaultCatalog: catalog.DefaultCatalog(e.getenv),
		Image:          f.image,
		Disk:           f.disk,
		SHA256:         f.sha256,
		Verify:         f.verify,
		Targets:        targets,
		CanReboot:      liveEnvironment(e.getenv),
		Plain:          ui.PlainTerminal(e.getenv, ttyName(out)),
	})
	if err != nil {
		return err
	}
	reportOutcome(e.stderr, "bty", o)
	if o.Reboot {
		return reboot(e.stderr, f.noReboot)
	}
	return o.Err
}

// liveEnvironment reports whether bty runs in the live environment of its
// boot media: its /init (media/init.sh) exports BTY_LIVE=1. Only there does
// the wizard offer to reboot; elsewhere the machine has its own way.
func liveEnvironment(getenv func(string) string) bool { return getenv("BTY_LIVE") == "1" }

// reportOutcome says on w what the wizard's flashes left: each target whose
// last flash succeeded, and what the others hold now.
func reportOutcome(w io.Writer, prog string, o ui.Outcome) {
	for _, t := range o.Flashed {
		fmt.Fprintf(w, "%s: flashed %s\n", prog, t)
	}
	for _, u := range o.Unfinished {
		fmt.Fprintf(w, "%s: %s\n", prog, u.Left)
	}
}

// wizardTerminal returns stdout when both stdout and stderr are terminals: the
// wizard never draws into a pipe or a file.
func wizardTerminal(e env) (*os.File, error) {
	out, ok1 := e.stdout.(*os.File)
	errf, ok2 := e.stderr.(*os.File)
	if !ok1 || !ok2 || !isTerminal(out) || !isTerminal(errf) {
		return nil, usagef("the wizard needs a terminal on stdout and stderr: to flash without one, give --image IMG --disk DISK --yes")
	}
	return out, nil
}

// ttyName is the device of the terminal f, "" when unknown.
func ttyName(f *os.File) string {
	name, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil {
		return ""
	}
	return name
}
