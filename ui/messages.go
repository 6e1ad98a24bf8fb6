package ui

import (
	"bty/catalog"
	"bty/flash"
)

// BackMsg: the user asked for the previous screen (esc).
type BackMsg struct{}

// Results of the work the root model starts.
type (
	// listLoadedMsg is one list of images: i is 0 for the image root, 1 +
	// the catalog's index for a catalog.
	listLoadedMsg struct {
		gen  int
		i    int
		rows []catalog.Entry
		err  string // the banner line when it failed
	}
	resolvedMsg struct {
		gen     int
		prefill bool          // --image, not a row
		entry   catalog.Entry // the row; for --image, what is known of the file
		image   catalog.Resolved
		info    flash.Info // what the image will write
		err     error
	}
	targetsLoadedMsg struct {
		gen     int
		targets []Target
		err     error
	}
	progressMsg  struct{ p flash.Progress }
	flashDoneMsg struct {
		res   *flash.Result
		err   error
		phase flash.Phase // the last phase the flash reported
	}
	// interruptMsg: the context was cancelled (a signal).
	interruptMsg struct{}
)
