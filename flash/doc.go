// Package flash owns the byte pipeline that puts an image on a target:
//
//	Source.Open(off) -> resumeReader (retry with Range, count, sha256, length/digest check)
//	  -> sniff (magic bytes) -> decoder (raw, gzip, xz, zstd, bzip2, or native qcow2)
//	  -> aligned 1 MiB blocks from a bounded pool, each known zero or not
//	  -> writer: O_DIRECT|O_EXCL pwrite at absolute offsets, several in flight;
//	     zero ranges become fallocate(PUNCH_HOLE) or BLKZEROOUT on a device, holes in a file
//
// A Rereadable source (a sparse local file) is hashed by a scout, a second
// reader that runs ahead of the resumeReader, which then only compares blocks
// with it.
//
// The order is chosen for crash safety: the first and last MiB of the target are
// wiped first, the image's first MiB is held back in memory, everything else is
// written, the source's length and digest are checked, and only then is the first
// MiB written. A flash that fails, is cancelled or loses power leaves a target with
// no partition table. Finish: fdatasync, BLKRRPART, the backup GPT moved to the end
// of a larger disk, and with Options.Verify a read-back of every written range.
//
// Before the target is opened, the decoded size is read where the container
// records it (Inspect tells it to callers, on the same probers): exact for
// raw, qcow2, xz and zstd, a lower bound for gzip's trailer; either refuses a
// device that is too small while it is untouched. An overrun found only while
// writing (bzip2, a pipe) fills the device to its end and says so. A failed
// Flash returns a partial Result: what was read, written and zeroed, and what
// the target holds now.
//
// flash imports no other package of this module: sources are anything that
// satisfies Source.
package flash
