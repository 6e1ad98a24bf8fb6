//go:build !linux

package main

import (
	"errors"
	"io"
	"os"
)

// isTerminal: bty writes to disks only on Linux; elsewhere nothing is taken
// for a terminal.
func isTerminal(io.Writer) bool { return false }

// readPassword is never called where nothing is a terminal.
func readPassword(*os.File) ([]byte, error) { return nil, errors.ErrUnsupported }
