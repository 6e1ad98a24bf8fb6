package ui

import (
	"context"
	"errors"
	"fmt"

	tea "charm.land/bubbletea/v2"

	"bty/flash"
)

// Options configure a wizard. The zero value of each field says what it means.
type Options struct {
	// Title follows "bty" on the top line, e.g. "demo"; "" shows "bty" alone.
	Title string
	// ImageRoot is the directory of local images; "" means none.
	ImageRoot string
	// Catalogs were named on the command line (--catalog): the source screen
	// is skipped. Empty means the user chooses on the source screen, which is
	// skipped too when the image root has images (esc on the image screen
	// reaches it).
	Catalogs []string
	// DefaultCatalog is offered on the source screen; "" offers none.
	DefaultCatalog string
	// Image is --image: the wizard resolves it first and skips the image
	// screen. Disk is --disk: the disk screen starts on it, and with both the
	// wizard opens at the confirmation.
	Image, Disk string
	// SHA256 is --sha256, the expected digest of Image; "" means the image's own.
	SHA256 string
	// Verify reads the target back after writing.
	Verify bool
	// Targets lists what may be flashed. Required.
	Targets TargetsFunc
	// CanReboot offers reboot on the done screen, after a y/N question whose
	// default is no; false offers none. Only the live environment sets it
	// (a workstation is rebooted by its own means). The wizard does not
	// reboot: Run's Outcome says the user asked, and the caller does it.
	CanReboot bool
	// Plain selects PlainStyles (see PlainTerminal); false means DefaultStyles.
	Plain bool
	// Resolver lists and opens the images; nil means CatalogResolver of a
	// catalog.Resolver of its own. main passes its resolver, so that the
	// wizard reaches catalogs and registries as headless mode does.
	Resolver Resolver
	// Backend flashes; its nil fields mean the real packages.
	Backend Backend
}

// Backend is the flash engine as the wizard calls it. Each nil field means
// the real package; tests replace them.
type Backend struct {
	// Flash writes; nil means flash.Flash.
	Flash func(ctx context.Context, src flash.Source, target string, opt flash.Options) (*flash.Result, error)
	// Inspect reads an opened image's format and decoded size, for the
	// confirmation and the disks' verdicts; nil means flash.Inspect.
	Inspect func(ctx context.Context, src flash.Source, opt flash.Options) (flash.Info, error)
}

func (b Backend) withDefaults() Backend {
	if b.Flash == nil {
		b.Flash = flash.Flash
	}
	if b.Inspect == nil {
		b.Inspect = flash.Inspect
	}
	return b
}

// Outcome is how a wizard ended.
type Outcome struct {
	// Flashed are the targets whose last flash succeeded, in the order of
	// those flashes.
	Flashed []string
	// Unfinished are the targets whose last flash failed or was cancelled
	// after it began to write, with what each holds now.
	Unfinished []Unfinished
	// Reboot: the user asked to reboot from the done screen.
	Reboot bool
	// Err is why the wizard ended badly: the error on screen when the user
	// quit from the error screen, a cancellation (wrapping context.Canceled)
	// when a flash was cancelled on the way out or a signal cancelled the
	// context. Its message is in plain words. Nil when the user quit
	// otherwise.
	Err error
}

// Unfinished is a target a flash did not finish.
type Unfinished struct {
	Target string
	// Left says what the target holds now, naming it: "/dev/sdb was left
	// without a partition table: it will not boot until it is flashed again."
	Left string
}

// Run shows the wizard on the terminal until the user quits. Cancelling ctx
// (SIGINT, SIGTERM) cancels a running flash, waits for it to stop, and ends.
func Run(ctx context.Context, opt Options) (Outcome, error) {
	// Signals are main's: they cancel ctx, which the wizard turns into a
	// cancelled flash before it ends.
	p := tea.NewProgram(New(ctx, opt), tea.WithoutSignalHandler())
	stop := context.AfterFunc(ctx, func() { p.Send(interruptMsg{}) })
	defer stop()
	final, err := p.Run()
	if err != nil {
		return Outcome{}, fmt.Errorf("terminal: %w", err)
	}
	m, ok := final.(Model)
	if !ok {
		return Outcome{}, errors.New("terminal: the wizard ended without a result")
	}
	return m.outcome, nil
}
