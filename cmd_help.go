package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// The command line's help and version: bty help, bty version, and the text of
// bty --help. Every command's --help goes to stdout and exits 0 (flags.go
// parses the flags and prints a command's help).

// version and commit are set with -ldflags "-X main.version=... -X
// main.commit=..."; empty means what the Go toolchain stamped in the build
// info (the module version, the VCS revision).
var version, commit = "", ""

// versionString is the short version, as bty serve's /version shows it.
func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v := bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 && (v == "" || v == "(devel)") {
				v = "devel-" + s.Value[:12]
			}
		}
		if v != "" && v != "(devel)" {
			return v
		}
	}
	return "devel"
}

// printVersion prints the version, the commit the binary was built from (as
// the Go toolchain stamped it) and the Go version.
func printVersion(w io.Writer) {
	rev, modified := commit, ""
	if bi, ok := debug.ReadBuildInfo(); ok && rev == "" {
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision":
				rev = s.Value
			case s.Key == "vcs.modified" && s.Value == "true":
				modified = " (with uncommitted changes)"
			}
		}
	}
	if rev == "" {
		rev = "unknown (built without version control information)"
	}
	fmt.Fprintf(w, "bty %s\ncommit %s%s\n%s %s/%s\n", versionString(), rev, modified, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

const rootUsage = `bty puts a system image on a disk: fast, safely, the same way every time.

Usage:
  bty --image IMG --disk DISK --yes [--sha256 HEX] [--verify] [--json]
  bty [--catalog SRC]... [--image IMG] [--disk DISK]      (the wizard)
  bty --server URL --mac MAC [--no-reboot]
  bty COMMAND [ARGS]...

IMG is a local path, an http(s):// URL, an oras:// reference, or the name of an
image in the image root ($BTY_IMAGE_ROOT, else /var/lib/bty/images) or in a
--catalog.
DISK is a block device (/dev/sdX, /dev/disk/by-id/...), serial:SERIAL, or a
regular file, which is created or resized to the image size.

Commands:
`

// rootHelp is bty --help: the usage above, the commands, and the flags.
func rootHelp() string {
	var b strings.Builder
	b.WriteString(rootUsage)
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-9s %s\n", c.name, c.summary)
	}
	b.WriteString("\nbty help COMMAND (or bty COMMAND --help) shows a command's flags.")
	return b.String()
}

// cmdHelp: bty help [COMMAND [KIND]] is bty [COMMAND [KIND]] --help.
func cmdHelp(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "help", "bty help [COMMAND [KIND]]\n\nShows the help of bty, or of a command: the same as bty COMMAND [KIND] --help.")
	pos, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(pos) > 0 && !isCommand(pos[0]) {
		return usagef("unknown command %q (see bty --help)", pos[0])
	}
	return dispatch(ctx, e, append(pos, "--help"))
}

// cmdVersion: bty version, the same as bty --version.
func cmdVersion(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "version", "bty version\n\nPrints the version, the commit and the Go version bty was built with.")
	if ok, err := parseFlags(fs, args); !ok {
		return err
	}
	printVersion(e.stdout)
	return nil
}

// plural returns "1 image", "2 images".
func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
