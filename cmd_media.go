package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"bty/catalog"
	"bty/disks"
	"bty/media"
	"bty/units"
)

// mediaSynopsis is the usage line of each kind; mediaAbout follows them in
// the help.
var mediaSynopsis = map[string]string{
	"netboot": "bty media netboot --kernel VMLINUZ --modules DIR --out DIR\n         [--append OPTS]",
	"usb":     "bty media usb --kernel VMLINUZ --modules DIR --out FILE|DISK [--yes]\n         [--images DIR] [--catalog FILE] [--size SIZE] [--append OPTS]",
}

const mediaAbout = `Builds the live environment that boots a machine into bty: a kernel and an
initramfs holding this bty (it must be static: CGO_ENABLED=0 go build), a
static busybox, and the kernel modules for disks, USB, wired NICs and
exFAT/FAT. netboot writes vmlinuz and initrd.img for PXE/iPXE, and shim,
GRUB and grub/grub.cfg for UEFI PXE with Secure Boot. usb writes a GPT disk
that boots UEFI machines (Secure Boot on or off: shim, GRUB) and BIOS
machines (GRUB), with a BTY_IMAGES exFAT partition: an image file, or a
whole disk that it then fills. The same inputs give the same bytes.

VMLINUZ is a kernel (Debian's /boot/vmlinuz-VERSION, signed for Secure
Boot); DIR its modules, lib/modules/VERSION (or the root of a dpkg -x of
the kernel package).`

// mediaFlags are the flags of bty media netboot and usb; images, catalog,
// size and yes are usb only.
type mediaFlags struct {
	kernel, modules, out  string
	bty, busybox, caCerts string
	extra                 multiFlag
	appendOpts            string
	secureBoot, yes       bool
	images, catalog, size string
}

// cmdMedia: bty media netboot|usb ...
func cmdMedia(ctx context.Context, e env, args []string) error {
	switch {
	case len(args) == 0:
		return usagef("media needs a kind: say netboot or usb (see bty media --help)")
	case isHelpFlag(args[0]):
		fmt.Fprintf(e.stdout, "Usage: %s\n       %s\n\n%s\n\nbty media netboot --help and bty media usb --help list their flags.\n",
			strings.ReplaceAll(mediaSynopsis["netboot"], "\n", "\n       "), strings.ReplaceAll(mediaSynopsis["usb"], "\n", "\n       "), mediaAbout)
		return nil
	case strings.HasPrefix(args[0], "-"):
		return usagef("media needs a kind before %s: say netboot or usb (see bty media --help)", args[0])
	case args[0] != "netboot" && args[0] != "usb":
		return usagef("unknown media kind %q: say netboot or usb (see bty media --help)", args[0])
	}
	kind := args[0]
	var f mediaFlags
	fs := newFlagSet(e, "media "+kind, mediaSynopsis[kind]+"\n\n"+mediaAbout)
	f.register(fs, kind)
	pos, err := parseArgs(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q (see bty media %s --help)", pos[0], kind)
	}
	for _, req := range []struct{ v, name string }{{f.kernel, "--kernel"}, {f.modules, "--modules"}, {f.out, "--out"}} {
		if req.v == "" {
			return usagef("%s is missing (see bty media %s --help)", req.name, kind)
		}
	}
	if f.bty == "" {
		if f.bty, err = os.Executable(); err != nil {
			return fmt.Errorf("find this executable: %w (give --bty PATH)", err)
		}
	}
	ir := media.InitramfsOptions{Bty: f.bty, Busybox: f.busybox, Modules: f.modules, ExtraModules: f.extra, CACerts: f.caCerts}
	chain := media.BootChain{UnsignedKernel: !f.secureBoot}
	if kind == "netboot" {
		return buildNetboot(e, f, ir, chain)
	}
	return buildUSB(e, f, ir, chain)
}

// register adds the flags of bty media KIND.
func (f *mediaFlags) register(fs *flagSet, kind string) {
	fs.StringVar(&f.kernel, "kernel", "", "the kernel `VMLINUZ` (bzImage), e.g. /boot/vmlinuz-6.1.0-NN-amd64")
	fs.StringVar(&f.modules, "modules", "", "its modules: `DIR` is lib/modules/VERSION, or a directory holding one")
	fs.StringVar(&f.bty, "bty", "", "static bty executable `FILE` to put inside (default: this one)")
	fs.StringVar(&f.busybox, "busybox", media.DefaultBusybox, "static busybox `FILE` (Debian package busybox-static)")
	fs.StringVar(&f.caCerts, "ca-certs", "", "CA bundle `FILE` for https:// sources (default "+media.DefaultCACerts+" if present; - for none)")
	fs.Var(&f.extra, "add-module", "another kernel `MODULE` to load, e.g. mpt3sas; repeatable")
	if kind == "netboot" {
		fs.BoolVar(&f.secureBoot, "secure-boot", true, "add shim and GRUB for UEFI PXE, and check that shim boots the kernel (=false: neither)")
		fs.StringVar(&f.out, "out", "", "directory `DIR` to write the files into (for UEFI PXE with Secure Boot: the TFTP root)")
		fs.StringVar(&f.appendOpts, "append", "", "kernel `OPTS` for grub.cfg, e.g. \"bty.server=http://10.0.0.5:8080\"")
	} else {
		fs.StringVar(&f.out, "out", "", "the disk image `FILE` to write (e.g. bty-usb.img), or a whole DISK (/dev/sdX, serial:S) that the stick then fills")
		fs.BoolVar(&f.yes, "yes", false, "write DISK without a question")
		fs.BoolVar(&f.secureBoot, "secure-boot", true, "check that shim boots the kernel with Secure Boot on (=false: any kernel, for machines with Secure Boot off)")
		fs.StringVar(&f.images, "images", "", "directory `DIR` whose images (as the image root lists them) go onto BTY_IMAGES")
		fs.StringVar(&f.catalog, "catalog", "", "catalog TOML `FILE` to put on BTY_IMAGES as catalog.toml")
		fs.StringVar(&f.size, "size", "", "`SIZE` of the disk image file, e.g. 8G (default: just large enough)")
		fs.StringVar(&f.appendOpts, "append", "", "kernel `OPTS` to add, e.g. \"bty.image=NAME bty.disk=serial:S bty.yes=1\"")
	}
}

// buildNetboot writes the netboot files (bty media netboot) and lists them.
func buildNetboot(e env, f mediaFlags, ir media.InitramfsOptions, chain media.BootChain) error {
	o := media.NetbootOptions{Kernel: f.kernel, Initramfs: ir, Append: f.appendOpts, Out: f.out}
	if f.secureBoot {
		o.Chain = &chain
	}
	nb, err := media.BuildNetboot(o)
	if err != nil {
		return mediaErr(err)
	}
	reportInitramfs(e, nb.Initramfs)
	for _, p := range []string{nb.Kernel, nb.Initrd, nb.Shim, nb.Grub, nb.GrubCfg} {
		if p != "" {
			fmt.Fprintln(e.stdout, p)
		}
	}
	return nil
}

// buildUSB writes the stick (bty media usb) to an image file or a whole disk.
func buildUSB(e env, f mediaFlags, ir media.InitramfsOptions, chain media.BootChain) error {
	var err error
	o := media.USBOptions{Kernel: f.kernel, Initramfs: ir, Chain: chain, Append: f.appendOpts, Out: f.out}
	if !isFileTarget(f.out) {
		if f.size != "" {
			return usagef("--size is for an image file: %s is a disk, and the stick fills it", f.out)
		}
		if !f.yes && !isTerminal(os.Stdin) {
			return usagef("--out %s is a disk: add --yes to write it without a question (or run bty on a terminal to be asked)", f.out)
		}
		d, _, err := disks.ResolveTarget(diskRoots(e), f.out, disks.Check{ImagePath: f.images})
		if err != nil {
			return err
		}
		o.Out = d.Path
		if !f.yes {
			o.Confirm = func(int64) error { return askWriteDisk(e, d) }
		}
	}
	if f.size != "" {
		if o.Size, err = parseSize(f.size); err != nil {
			return usagef("--size %q: %v", f.size, err)
		}
	}
	if f.images != "" {
		entries, err := catalog.ScanRoot(f.images)
		if err != nil {
			return usagef("--images: %v", err)
		}
		for _, en := range entries {
			o.Images = append(o.Images, filepath.Join(f.images, en.Name))
		}
		if len(entries) == 0 {
			fmt.Fprintf(e.stderr, "bty: %s holds no images (bty images lists what counts)\n", f.images)
		}
	}
	if f.catalog != "" {
		b, err := os.ReadFile(f.catalog)
		if err != nil {
			return usagef("--catalog: %v", err)
		}
		if _, err := catalog.Parse(f.catalog, b); err != nil {
			return err
		}
		o.Catalog = b
	}
	usb, err := media.BuildUSB(o)
	if err != nil {
		return mediaErr(err)
	}
	reportInitramfs(e, usb.Initramfs)
	for _, im := range usb.Images {
		fmt.Fprintf(e.stderr, "bty: %s  %s (%d bytes)\n", im.SHA256, im.Name, im.Size)
	}
	for _, w := range usb.Warnings {
		fmt.Fprintf(e.stderr, "bty: warning: %s\n", w)
	}
	fmt.Fprintf(e.stdout, "%s\n", usb.Path)
	return nil
}

// askWriteDisk asks on the terminal before bty media usb writes a disk.
func askWriteDisk(e env, d disks.Disk) error {
	what := strings.Join(strings.Fields(d.Vendor+" "+d.Model), " ")
	if what == "" {
		what = "no model"
	}
	note := ""
	if !d.Removable {
		note = " It is not removable."
	}
	fmt.Fprintf(e.stderr, "Write the bty stick to %s (%s, %s)? Everything on it is lost.%s [y/N] ", d.Path, what, units.Bytes(d.SizeBytes), note)
	line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
		return declined{d.Path}
	}
	return nil
}

// declined: the answer to askWriteDisk was not yes.
type declined struct{ path string }

func (d declined) Error() string { return "not written: " + d.path + " is untouched" }
func (d declined) Unwrap() error { return context.Canceled }

// mediaErr maps the builder's input and host-tool problems to the usage exit
// code; the rest (reading, writing) stays an I/O failure.
func mediaErr(err error) error {
	if errors.Is(err, media.ErrInput) || errors.Is(err, media.ErrMissingTool) {
		return usageErr{err}
	}
	return err
}

func reportInitramfs(e env, info *media.InitramfsInfo) {
	fmt.Fprintf(e.stderr, "bty: initramfs %d bytes; %s\n", info.Size, info)
	if len(info.Missing) > 0 {
		fmt.Fprintf(e.stderr, "bty: the kernel has no modules %s (left out)\n", strings.Join(info.Missing, " "))
	}
}

// parseSize reads a size in bytes with an optional K, M, G or T suffix (powers
// of 1024; "GiB" and "GB" mean the same here).
func parseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v <= 0 || v > (1<<62)/mult {
		return 0, errors.New("not a size like 8G, 512M or 1073741824")
	}
	return v * mult, nil
}
