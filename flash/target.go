package flash

import "math"

// target is where the image goes: a block device or a regular file. The OS parts
// live in target_linux.go; other systems get errors.ErrUnsupported.
type target struct {
	path   string
	isDev  bool
	size   int64 // device size in bytes; -1 for a file (it grows)
	align  int64 // O_DIRECT alignment: the logical sector size, or 4096 for a file
	direct bool  // false when the file system refuses O_DIRECT (tmpfs)
	keep   bool  // a delta: a file is not truncated, its zero ranges are zeroed
	sys    targetSys
}

func alignDown(v, a int64) int64 { return v / a * a }

// tailStart is where the last MiB of a device starts, the part prepare wipes
// besides the first MiB (aligned, never inside the first MiB); on a file, or
// a device of a MiB or less, there is none: it is the largest offset.
func (t *target) tailStart() int64 {
	if !t.isDev {
		return math.MaxInt64
	}
	if t.size <= headSize {
		return t.size
	}
	return max(headSize, alignDown(t.size-headSize, t.align))
}
