//go:build !linux

package main

import "errors"

func rebootSystem() error { return errors.ErrUnsupported }
