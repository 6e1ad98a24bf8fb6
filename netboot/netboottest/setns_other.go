//go:build !linux

package netboottest

import (
	"errors"
	"os"
)

// setns: network namespaces are Linux's.
func setns(*os.File) error { return errors.ErrUnsupported }
