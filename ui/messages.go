package ui

import (
	"bty/catalog"
	"bty/flash"
)

// BackMsg: the user asked for the previous screen (esc).
type BackMsg struct{}

// Results of the work the root model starts.
type (
	// listLoadedMsg is one list of images; next holds the lists still to
	// come.
	listLoadedMsg struct {
		gen  int
		list catalog.List
		next <-chan catalog.List
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
