package main

import (
	"bytes"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// helpCommands are bty itself and every command, with the kind for those
// that take one.
var helpCommands = [][]string{
	{}, {"disks"}, {"images"}, {"catalog"}, {"catalog", "check"}, {"serve"}, {"demo"},
	{"media"}, {"media", "netboot"}, {"media", "usb"}, {"help"}, {"version"},
}

// runIn runs bty in this process, as main does.
func runIn(args ...string) result {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return result{out.String(), errb.String(), code}
}

// singleDashFlag matches a flag listed as -name, as the flag package does.
var singleDashFlag = regexp.MustCompile(`(?m)^\s+-[a-z]`)

// TestHelp: --help, -h and bty help COMMAND print the command's help on
// stdout and exit 0, with the flags listed as --flag.
func TestHelp(t *testing.T) {
	for _, cmd := range helpCommands {
		name := strings.Join(append([]string{"bty"}, cmd...), " ")
		t.Run(name, func(t *testing.T) {
			r := runIn(append(cmd, "--help")...)
			if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, "Usage:") {
				t.Fatalf("%s --help = exit %d, stdout %q, stderr %q; want exit 0 and the usage on stdout only", name, r.code, r.stdout, r.stderr)
			}
			if strings.Count(r.stdout, "Usage:") != 1 {
				t.Errorf("%s --help prints the usage %d times:\n%s", name, strings.Count(r.stdout, "Usage:"), r.stdout)
			}
			if singleDashFlag.MatchString(r.stdout) {
				t.Errorf("%s --help lists flags as -flag:\n%s", name, r.stdout)
			}
			if strings.Contains(r.stdout, "Flags:") && !regexp.MustCompile(`(?m)^  --[a-z]`).MatchString(r.stdout) {
				t.Errorf("%s --help has a Flags: section without --flag lines:\n%s", name, r.stdout)
			}
			for _, l := range strings.Split(r.stdout, "\n") {
				if len(l) > 80 {
					t.Errorf("%s --help has a line of %d columns: %q", name, len(l), l)
				}
			}
			if h := runIn(append(cmd, "-h")...); h != r {
				t.Errorf("%s -h = %+v, want the same as --help", name, h)
			}
			if h := runIn(append([]string{"help"}, cmd...)...); h != r {
				t.Errorf("bty help %s = %+v, want the same as %s --help", strings.Join(cmd, " "), h, name)
			}
		})
	}
}

// TestUnknownFlag: a flag no command has is one line on stderr naming it and
// the command's --help, exit 2, and nothing on stdout.
func TestUnknownFlag(t *testing.T) {
	for _, cmd := range helpCommands {
		name := strings.Join(append([]string{"bty"}, cmd...), " ")
		t.Run(name, func(t *testing.T) {
			r := runIn(append(cmd, "--no-such-flag")...)
			help := name
			if len(cmd) == 1 && (cmd[0] == "catalog" || cmd[0] == "media") {
				help = "bty " + cmd[0] // say the subcommand first: its --help is the parent's
			}
			want := "(see " + help + " --help)\n"
			if r.code != exitUsage || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 ||
				!strings.HasPrefix(r.stderr, "bty: ") || !strings.Contains(r.stderr, "--no-such-flag") || !strings.HasSuffix(r.stderr, want) {
				t.Errorf("%s --no-such-flag = exit %d, stdout %q, stderr %q; want exit 2 and one line naming --no-such-flag ending %q", name, r.code, r.stdout, r.stderr, want)
			}
		})
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--frobnicate"}, "bty: unknown flag --frobnicate (see bty --help)\n"},
		{[]string{"images", "--json=maybe"}, `invalid boolean value "maybe" for --json`},
		{[]string{"serve", "--listen"}, "a value is missing after --listen"},
		{[]string{"frobnicate"}, `bty: unknown command "frobnicate" (see bty --help)` + "\n"},
		{[]string{"help", "frobnicate"}, `bty: unknown command "frobnicate" (see bty --help)` + "\n"},
		{[]string{"catalog"}, "bty: catalog needs a subcommand: check (see bty catalog --help)\n"},
		{[]string{"media"}, "bty: media needs a kind: say netboot or usb (see bty media --help)\n"},
		{[]string{"version", "extra"}, `unexpected argument "extra" (see bty version --help)`},
	} {
		r := runIn(tc.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) || strings.Contains(r.stderr, "Usage") || strings.Contains(r.stderr, "usage:") {
			t.Errorf("bty %s = exit %d, stderr %q; want exit 2 and %q, without the usage", strings.Join(tc.args, " "), r.code, r.stderr, tc.want)
		}
	}
}

// TestVersion: bty --version and bty version print the version, the commit
// and the Go version.
func TestVersion(t *testing.T) {
	defer func(v, c string) { version, commit = v, c }(version, commit)
	version, commit = "1.2.3", "0123456789abcdef0123456789abcdef01234567"
	want := "bty 1.2.3\ncommit 0123456789abcdef0123456789abcdef01234567\n" + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	for _, args := range [][]string{{"--version"}, {"version"}} {
		if r := runIn(args...); r.code != 0 || r.stdout != want || r.stderr != "" {
			t.Errorf("bty %s = exit %d, stdout %q, stderr %q; want exit 0 and %q", args[0], r.code, r.stdout, r.stderr, want)
		}
	}
	// Without -ldflags the commit comes from the build info, or says why not.
	version, commit = "", ""
	r := runIn("version")
	if lines := strings.Split(r.stdout, "\n"); r.code != 0 || len(lines) != 4 || !strings.HasPrefix(lines[0], "bty ") || !strings.HasPrefix(lines[1], "commit ") || !strings.HasPrefix(lines[2], "go") {
		t.Errorf("bty version = exit %d %q; want bty VERSION, commit COMMIT, the Go version", r.code, r.stdout)
	}
}
