package catalog

import "bty/flash"

// FileSource's reader of a regular file skips holes (SEEK_HOLE is Linux's).
var _ flash.HoleSkipper = (*sparseReader)(nil)
