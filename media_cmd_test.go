package main

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"bty/internal/need"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64 // 0: an error
	}{
		{"1073741824", 1 << 30},
		{"8G", 8 << 30},
		{"8g", 8 << 30},
		{"8GiB", 8 << 30},
		{"8GB", 8 << 30},
		{"512M", 512 << 20},
		{"1T", 1 << 40},
		{"64K", 64 << 10},
		{"", 0},
		{"G", 0},
		{"-1G", 0},
		{"1.5G", 0},
		{"99999999999T", 0},
	} {
		got, err := parseSize(tc.in)
		if (err != nil) != (tc.want == 0) || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v, want %d", tc.in, got, err, tc.want)
		}
	}
}

// TestMediaUsage: bad invocations exit 2 with a message saying what to do.
func TestMediaUsage(t *testing.T) {
	dir := t.TempDir()
	kernel := filepath.Join(dir, "vmlinuz")
	k := make([]byte, 0x1000)
	copy(k[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(k[0x20e:], 0x200)
	copy(k[0x400:], "6.1.0-test #1\x00")
	writeFile(t, kernel, k)
	mods := filepath.Join(dir, "lib", "modules", "6.1.0-test")
	if err := os.MkdirAll(filepath.Join(mods, "kernel"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(mods, "modules.dep"), []byte("kernel/x.ko:\n"))
	writeFile(t, filepath.Join(mods, "kernel", "x.ko"), []byte("x"))
	out := filepath.Join(dir, "out")

	cases := []struct {
		name string
		args []string
		msg  string
	}{
		{"no kind", []string{"media"}, "say netboot or usb"},
		{"unknown kind", []string{"media", "floppy"}, `unknown media kind "floppy"`},
		{"no kernel", []string{"media", "netboot", "--modules", mods, "--out", out}, "--kernel is missing"},
		{"not a kernel", []string{"media", "netboot", "--kernel", mods, "--modules", mods, "--out", out}, "kernel"},
		{"not modules", []string{"media", "netboot", "--kernel", kernel, "--modules", dir + "/nope", "--out", out, "--bty", "/bin/busybox"}, "not a kernel module directory"},
		{"bad size", []string{"media", "usb", "--kernel", kernel, "--modules", mods, "--out", out, "--size", "big"}, "--size"},
		{"dynamic bty", []string{"media", "netboot", "--kernel", kernel, "--modules", mods, "--out", out, "--bty", "/bin/ls"}, "CGO_ENABLED=0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "dynamic bty" || tc.name == "not modules" {
				need.StaticBusybox(t) // checked before the bty and the modules
			}
			r := runBty(t, tc.args...)
			if r.code != exitUsage || !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("bty %s = exit %d, stderr %q; want exit %d and %q", strings.Join(tc.args, " "), r.code, r.stderr, exitUsage, tc.msg)
			}
		})
	}
}
