//go:build !linux

package main

import "io"

// isTerminal: bty writes to disks only on Linux; elsewhere nothing is taken
// for a terminal.
func isTerminal(io.Writer) bool { return false }
