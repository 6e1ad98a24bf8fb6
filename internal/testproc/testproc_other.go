//go:build !linux

package testproc

import "os/exec"

// dieWithParent does nothing: only Linux has a parent-death signal, and the
// tests that start long-lived processes run on Linux.
func dieWithParent(*exec.Cmd) {}
