package main

// Flag parsing for every command: flags are listed as --flag, flags may come
// after the positional arguments, --help prints the command's help on stdout
// (exit 0), and a bad flag is one line on stderr that points to the
// command's --help (exit 2).

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

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

// multiFlag is a flag that may be given several times (--catalog).
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
