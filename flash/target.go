package flash

// target is where the image goes: a block device or a regular file. The OS parts
// live in target_linux.go; other systems get errors.ErrUnsupported.
type target struct {
	path   string
	isDev  bool
	size   int64 // device size in bytes; -1 for a file (it grows)
	align  int64 // O_DIRECT alignment: the logical sector size, or 4096 for a file
	direct bool  // false when the file system refuses O_DIRECT (tmpfs)
	sys    targetSys
}

func alignDown(v, a int64) int64 { return v / a * a }
