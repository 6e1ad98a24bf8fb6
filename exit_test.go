package main

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"bty/catalog"
	"bty/category"
	"bty/disks"
	"bty/flash"
)

// TestExitCode: each package's errors reach the exit code of their
// category (DESIGN: 1 io, 2 usage, 3 refused, 4 integrity, 5 source, 130
// cancelled) through the one-row-per-category table.
func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, exitOK},
		{"plain error", errors.New("boom"), exitIO},
		{"cancelled", &flash.CancelError{}, exitCancelled},
		{"context cancelled", fmt.Errorf("flash: %w", context.Canceled), exitCancelled},
		{"usage", usagef("--disk is required"), exitUsage},
		{"no plan to follow", fmt.Errorf("%w: server down", errFallback), exitSource},
		{"digest mismatch", fmt.Errorf("%w: x.img", flash.ErrDigestMismatch), exitIntegrity},
		{"corrupt", flash.ErrCorrupt, exitIntegrity},
		{"tarball", flash.ErrTarball, exitIntegrity},
		{"unsupported qcow2", fmt.Errorf("%w: qcow2 image has a backing file", flash.ErrUnsupported), exitIntegrity},
		{"too large", flash.ErrTooLarge, exitRefused},
		{"in use", flash.ErrTargetInUse, exitRefused},
		{"overrun", &flash.OverrunError{Target: "/dev/sdz"}, exitRefused},
		{"source side", &flash.IOError{Side: flash.SideSource, Err: errors.New("connection reset")}, exitSource},
		{"target side", &flash.IOError{Side: flash.SideTarget, Err: errors.New("EIO")}, exitIO},
		{"source side, corrupt", &flash.IOError{Side: flash.SideSource, Err: flash.ErrLengthMismatch}, exitIntegrity},
		{"disk not found", fmt.Errorf("serial %q: no disk has it: %w", "X", disks.ErrNotFound), exitRefused},
		{"disk ambiguous", disks.ErrAmbiguous, exitRefused},
		{"bad disk argument", disks.ErrBadSpec, exitUsage},
		{"disk refused", &disks.RefusedError{Disk: "/dev/sda", Reasons: []string{"mounted"}}, exitRefused},
		{"invalid sidecar", catalog.ErrInvalidSidecar, exitUsage},
		{"invalid catalog", &catalog.InvalidError{Source: "c.toml"}, exitUsage},
		{"image index", catalog.ErrIndex, exitUsage},
		{"not an image", catalog.ErrNotImage, exitUsage},
		{"image not found", fmt.Errorf("GET x: 404: %w", catalog.ErrNotFound), exitSource},
		{"registry bytes corrupt", errors.Join(category.ErrSource, fmt.Errorf("%w: layer", category.ErrIntegrity)), exitIntegrity},
		{"image index from a registry", errors.Join(category.ErrSource, catalog.ErrIndex), exitUsage},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%s: %v) = %d, want %d", tc.name, tc.err, got, tc.want)
		}
	}
}
