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

// The command line's help, flag parsing and version: every command's --help
// goes to stdout and exits 0, flags are listed as --flag, and a bad flag is
// one line on stderr that points to the command's --help (exit 2).

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

// flagSet is a command's flags and its help text.
type flagSet struct {
	*flag.FlagSet
	e    env
	help string // what --help prints before the flags
}

// newFlagSet returns the flags of the command name; usage is its synopsis,
// optionally followed by a blank line and a description.
func newFlagSet(e env, name, usage string) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// The flag package prints its error and the usage on any failure; bty
	// prints one line instead (parseArgs), and the help only when asked.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &flagSet{FlagSet: fs, e: e, help: "Usage: " + usage}
}

// newRootFlagSet returns the flags of bty itself (flash, wizard, server mode).
func newRootFlagSet(e env) *flagSet {
	fs := newFlagSet(e, "", "")
	fs.help = rootHelp()
	return fs
}

// command is how the help and errors name the command: "bty images".
func (fs *flagSet) command() string {
	return strings.TrimSpace("bty " + fs.Name())
}

// printHelp writes the usage and the flags to stdout.
func (fs *flagSet) printHelp() {
	w := fs.e.stdout
	fmt.Fprintln(w, fs.help)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprint(w, "\nFlags:\n")
		printFlags(w, fs.FlagSet)
	}
}

// printFlags lists the flags as a person types them, --name VALUE, in two
// columns within 80 (the flag package lists them as -name). VALUE is the
// `quoted` word of the flag's help, else the flag's name in capitals.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	type row struct{ left, help string }
	var rows []row
	width := 0
	fs.VisitAll(func(f *flag.Flag) {
		arg, help := flag.UnquoteUsage(f)
		left := "--" + f.Name
		if _, isBool := f.Value.(interface{ IsBoolFlag() bool }); !isBool {
			if arg == "" || arg == "string" || arg == "value" {
				arg = strings.ToUpper(f.Name)
			}
			left += " " + arg
		}
		if d := f.DefValue; d != "" && d != "false" && d != "0" {
			help += fmt.Sprintf(" (default %s)", d)
		}
		rows = append(rows, row{left, help})
		if len(left) <= 20 {
			width = max(width, len(left))
		}
	})
	indent := strings.Repeat(" ", 2+width+2)
	for _, r := range rows {
		lines := wrapWords(r.help, 80-len(indent))
		if len(r.left) > width {
			fmt.Fprintf(w, "  %s\n", r.left)
		} else {
			fmt.Fprintf(w, "  %-*s  %s\n", width, r.left, lines[0])
			lines = lines[1:]
		}
		for _, l := range lines {
			fmt.Fprintf(w, "%s%s\n", indent, l)
		}
	}
}

// wrapWords breaks s into lines of at most width bytes where it can.
func wrapWords(s string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(s) {
		if line != "" && len(line)+1+len(word) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	return append(lines, line)
}

// parseFlags parses the flags of a command that takes no positional
// arguments. ok is false when the caller should return err: nil after --help
// (printed), else a usage error.
func parseFlags(fs *flagSet, args []string) (ok bool, err error) {
	pos, err := parseArgs(fs, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return false, nil
	case err != nil:
		return false, err
	case len(pos) > 0:
		return false, usagef("unexpected argument %q (see %s --help)", pos[0], fs.command())
	}
	return true, nil
}

// parseArgs parses flags that may come before or after the positional
// arguments, and returns the positional ones. After --help it has printed the
// help and returns flag.ErrHelp.
func parseArgs(fs *flagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.printHelp()
				return nil, err
			}
			return nil, usagef("%s (see %s --help)", flagError(err), fs.command())
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// flagError rewords the flag package's errors with flags written as --flag.
func flagError(err error) string {
	s := err.Error()
	for _, r := range []struct{ from, to string }{
		{"flag provided but not defined: -", "unknown flag --"},
		{"flag needs an argument: -", "a value is missing after --"},
		{" for flag -", " for --"}, // invalid value "x" for flag -name: ...
		{" for -", " for --"},      // invalid boolean value "x" for -name: ...
	} {
		// The flag's name follows the value, which may hold anything.
		if i := strings.LastIndex(s, r.from); i >= 0 {
			return s[:i] + r.to + s[i+len(r.from):]
		}
	}
	return s
}

// isHelpFlag reports whether arg asks for help, as the flag package sees it.
func isHelpFlag(arg string) bool {
	switch arg {
	case "-h", "-help", "--h", "--help":
		return true
	}
	return false
}

// plural returns "1 image", "2 images".
func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
