package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"bty/catalog"
	"bty/disks"
	"bty/flash"
	"bty/fleet"
)

// flashFlags are the flags of the flash command.
type flashFlags struct {
	image, disk, sha256 string
	yes, verify, json   bool
	delta               bool
	noReboot, plainHTTP bool
	server, mac         string
	catalogs            multiFlag
}

func parseFlashFlags(e env, args []string) (*flashFlags, error) {
	var f flashFlags
	var showVersion bool
	fs := newRootFlagSet(e)
	fs.StringVar(&f.image, "image", "", "image to flash: path, http(s) URL, oras:// ref, catalog entry name, or - for standard input")
	fs.StringVar(&f.disk, "disk", "", "target: block device, /dev/disk/by-id link, or regular file")
	fs.BoolVar(&f.yes, "yes", false, "flash without a prompt (headless; the target must be named exactly)")
	fs.StringVar(&f.sha256, "sha256", "", "expected sha256 of the image bytes (overrides a .sha256 sidecar)")
	fs.BoolVar(&f.verify, "verify", false, "read the target back after writing and compare")
	fs.BoolVar(&f.delta, "delta", false, "read the target and write only the blocks that differ from the image")
	fs.BoolVar(&f.json, "json", false, "print progress and the result as JSON lines on stdout")
	fs.BoolVar(&f.noReboot, "no-reboot", false, "server-driven mode: print what would be done instead of rebooting")
	fs.StringVar(&f.server, "server", "", "server-driven mode: the bty server URL (else bty.server= on the kernel command line)")
	fs.StringVar(&f.mac, "mac", "", "server-driven mode: this machine's MAC (else bty.mac= on the kernel command line)")
	fs.Var(&f.catalogs, "catalog", "catalog source (TOML file, http(s) URL, oras:// ref); repeatable")
	fs.BoolVar(&f.plainHTTP, "plain-http", false, "talk plain HTTP to oras:// registries that are not on loopback")
	fs.BoolVar(&showVersion, "version", false, "print the version, the commit and the Go version, and exit")
	if ok, err := parseFlags(fs, args); !ok {
		if err == nil {
			err = flag.ErrHelp
		}
		return nil, err
	}
	if showVersion {
		printVersion(e.stdout)
		return nil, flag.ErrHelp
	}
	if f.sha256 != "" {
		sum, ok := catalog.NormalizeSHA256(f.sha256)
		if !ok {
			return nil, usagef("--sha256 %q is not 64 hex digits", f.sha256)
		}
		f.sha256 = sum
	}
	return &f, nil
}

func cmdFlash(ctx context.Context, e env, args []string) error {
	f, err := parseFlashFlags(e, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	cmdline, err := fleet.ReadCmdline(cmdlinePath(e))
	if err != nil {
		return err
	}
	// The one resolver of this run: headless mode, the wizard and
	// server-driven mode reach images the same way.
	res := newResolver(e, f.catalogs, f.plainHTTP)
	if serverMode(f, cmdline) {
		return followServer(ctx, e, f, res, cmdline)
	}
	switch {
	case f.image == "-" && !f.yes:
		return usagef("--image - reads the image from standard input, where the wizard reads its keys: add --yes and --disk")
	case f.image == "-" && isTerminal(os.Stdin):
		return usagef("--image - reads the image from standard input, which is a terminal: pipe the image in (xz -dc x.img.xz | bty --image - ...)")
	case !f.yes:
		// The wizard, opened at the first choice not made on the command line.
		return runWizard(ctx, e, f, res)
	case f.image == "":
		return usagef("--image is missing: --yes flashes without a prompt, so name the image to flash")
	case f.disk == "":
		return usagef("--disk is missing: --yes flashes without a prompt, so name the target disk or file")
	}
	return headless(ctx, e, f, res)
}

// headless runs one flash without a TUI, reporting on stderr or as JSON lines.
func headless(ctx context.Context, e env, f *flashFlags, res *catalog.Resolver) error {
	rep := newReport(e, f.json)
	run := &flashRun{image: f.image, target: f.disk}
	err := func() error {
		img, err := res.Resolve(ctx, f.image)
		if err != nil {
			return err
		}
		run.image, run.want, run.wantFrom = img.Name, img.SHA256, img.SHA256From
		if f.sha256 != "" {
			run.want, run.wantFrom = f.sha256, catalog.DigestFlag
		}
		target, err := headlessTarget(e, f.disk, img.Path)
		if err != nil {
			return err
		}
		run.target, run.targetKnown = target, true
		opt := flash.Options{
			SHA256:     run.want,
			Size:       img.Size,
			FormatHint: img.Format,
			Verify:     f.verify,
			Delta:      f.delta,
			Progress:   rep.progress,
		}
		if f.delta && img.BlockIndex != "" {
			// The blocks the target lacks come from the block store;
			// without an index, the delta reads the whole image.
			blocks, err := res.OpenBlocks(ctx, img)
			if err != nil {
				return err
			}
			opt.Store = blocks
			run.want, run.wantFrom = strings.TrimPrefix(blocks.Index().Digest, "sha256:"), catalog.DigestBlockIndex
		}
		run.res, err = flash.Flash(ctx, img.Source, target, opt)
		return err
	}()
	if err != nil {
		err = run.explain(ctx, err)
		rep.fail(run, err, exitCode(err))
		if f.json {
			return reported{err}
		}
		return err
	}
	rep.result(run)
	return nil
}

// explain puts a failure in words a user can act on: a cancel says so and
// why (never "context canceled"), and the message ends with what the target
// holds now. The error's category, and so the exit code, stays.
func (run *flashRun) explain(ctx context.Context, err error) error {
	var ce *flash.CancelError
	if errors.Is(err, context.Canceled) && !errors.As(err, &ce) {
		err = &flash.CancelError{Cause: context.Cause(ctx)}
	}
	note := "nothing was written"
	if run.targetKnown {
		note = run.res.TargetNote(run.target)
	}
	return fmt.Errorf("%w; %s", err, note)
}

// diskRoots are the /sys, /proc, /dev and /run roots disks reads; the
// BTY_SYSFS, BTY_PROCFS, BTY_DEVFS and BTY_RUNDIR variables point them at fixture
// trees in tests (docs/architecture.md: roots are parameters).
func diskRoots(e env) disks.Roots {
	return disks.Roots{Sys: e.getenv("BTY_SYSFS"), Proc: e.getenv("BTY_PROCFS"), Dev: e.getenv("BTY_DEVFS"), Run: e.getenv("BTY_RUNDIR")}
}

// headlessTarget applies the headless rule to DISK: a regular file (or a new
// path outside /dev) is a disk image being produced; anything else must name
// one disk exactly and not be refused by its verdict. imagePath is the local
// image file, if any, so the disk holding it is refused.
func headlessTarget(e env, spec, imagePath string) (string, error) {
	if isFileTarget(spec) {
		return spec, nil
	}
	d, _, err := disks.ResolveTarget(diskRoots(e), spec, disks.Check{ImagePath: imagePath})
	if err != nil {
		return "", err
	}
	return d.Path, nil
}

func isFileTarget(spec string) bool {
	if strings.HasPrefix(spec, "serial:") {
		return false
	}
	if fi, err := os.Stat(spec); err == nil {
		return fi.Mode().IsRegular()
	}
	return !strings.HasPrefix(filepath.Clean(spec), "/dev/")
}
