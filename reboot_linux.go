package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// rebootSystem flushes the file systems and restarts the machine with the
// reboot(2) system call: no init system is needed in the live environment.
func rebootSystem() error {
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
		return &os.SyscallError{Syscall: "reboot", Err: err}
	}
	return nil
}
