package netboot

import (
	"errors"
	"fmt"
	"syscall"
)

// listenError names what a failed bind needs: a privilege, or a port that
// another program holds.
func listenError(port int, what string, err error) error {
	switch {
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return fmt.Errorf("%w: listen on UDP port %d (%s): needs root or CAP_NET_BIND_SERVICE (run as root, or setcap cap_net_bind_service=+ep on the binary)", ErrPrivilege, port, what)
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("%w: listen on UDP port %d (%s): another program holds it (ss -ulpn shows which): stop it, or run bty on another machine", ErrConfig, port, what)
	}
	return fmt.Errorf("listen on UDP port %d (%s): %w", port, what, err)
}
