// Package testproc holds what tests need of the processes they start.
package testproc

import (
	"os"
	"os/exec"
	"time"
)

// DieWithTest makes cmd's process die with the test binary. t.Cleanup kills
// it on a normal end, but a test binary that times out (or is killed) panics
// past every cleanup, and a VM, dnsmasq or bty serve left behind would go on
// eating CPU and holding its namespace. Call it before cmd.Start. The signal
// is sent when the thread that started the process ends, so do not start
// processes from a goroutine locked to its thread, and let no locked
// thread end (netboottest.DoIn goes back to its namespace and unlocks).
func DieWithTest(cmd *exec.Cmd) *exec.Cmd {
	dieWithParent(cmd)
	return cmd
}

// Stop asks a process to end with sig, as an operator would, so that it
// removes what it made, and kills it if exited has neither closed nor sent
// within wait. It returns once exited has closed or sent.
func Stop[T any](p *os.Process, sig os.Signal, exited <-chan T, wait time.Duration) {
	p.Signal(sig)
	select {
	case <-exited:
	case <-time.After(wait):
		p.Kill()
		<-exited
	}
}
