package catalog

import "bty/flash"

// The sources catalog resolves are what the flash engine reads, with the
// optional behaviours it looks for. The assertions live in a test so that
// catalog does not import flash; they are checked whenever the tests build.
var (
	_ flash.Source         = (*HTTPSource)(nil)
	_ flash.Source         = (*StdinSource)(nil)
	_ flash.Source         = (*OrasSource)(nil)
	_ flash.Rereadable     = FileSource{}
	_ flash.PermanentError = (*sourceError)(nil)
)
