//go:build !linux

package flash

import "errors"

type targetSys struct{}

func openTarget(path string) (*target, error) { return nil, errors.ErrUnsupported }

func (t *target) writeAt(p []byte, off int64) error       { return errors.ErrUnsupported }
func (t *target) writeBuffered(p []byte, off int64) error { return errors.ErrUnsupported }
func (t *target) zeroRange(off, n int64) error            { return errors.ErrUnsupported }
func (t *target) readAt(p []byte, off int64) (int, error) { return 0, errors.ErrUnsupported }
func (t *target) prepare() error                          { return errors.ErrUnsupported }
func (t *target) finishSize(size int64) error             { return errors.ErrUnsupported }
func (t *target) sync() error                             { return errors.ErrUnsupported }
func (t *target) rereadPartitions() error                 { return errors.ErrUnsupported }
func (t *target) sameFile(path string) bool               { return false }
func (t *target) close() error                            { return nil }

// hugePages: small pages only.
func hugePages(b []byte) {}
