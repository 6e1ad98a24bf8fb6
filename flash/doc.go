// Package flash owns the byte pipeline that puts an image on a target. Flash
// runs it in this order (flash.go, one function a step):
//
//	open        Source.Open(off) -> resumeReader (retry with Range, count, sha256,
//	            length/digest check) -> prefetcher (16 MiB ahead) -> input
//	probe       first bytes -> bty/format names the format -> its prober: the
//	            decoded size where the container records it, and the decoder
//	refuse tar  decoder.head: the decoded start, "ustar" at 257 refused
//	open target O_DIRECT|O_EXCL; the image itself, a device too small: refused
//	stream      wipe the first and last MiB; decoder.stream -> blockSink (the
//	            writer): aligned 1 MiB blocks from a bounded pool, zero or not;
//	            O_DIRECT pwrite at absolute offsets, several in flight; zero
//	            ranges punched, BLKZEROOUT, or holes; the source read to its end
//	finish      pieces, backup GPT moved, fdatasync, first MiB, fdatasync,
//	            BLKRRPART, and with Options.Verify a read-back
//
// A decoder is what a format's prober returns (probe.go; one decode_*.go file
// per format): a head for the tar check, and a stream into the block sink. It
// decides its own parallelism: gzip and zstd decode as one stream; xz blocks,
// bzip2 blocks and qcow2's compressed clusters are decoded on every core by
// one ordered worker pool (parallel.go) while the source is read once, in
// order, and hashed on the way.
//
// A source may have optional behaviours that Flash looks for, as io.Copy
// looks for io.WriterTo (source.go): a Rereadable source (a sparse local
// file) with an expected digest is hashed by a scout, a second reader that
// runs ahead of the resumeReader, which then only compares blocks with it; a
// reader that is a HoleSkipper hands holes over without reading them; a
// PermanentError is not retried.
//
// Hashing follows what must be checked: with an expected digest every byte
// is hashed; without one, every format but raw is still hashed (the
// compressed bytes, in the prefetcher's goroutine), and a raw image is not
// (Result.SHA256Skipped): its holes would cost more to hash than to write.
// The raw path hands the prefetcher's aligned buffers to the writer as they
// are (blockSink.Take), so on a fast target it costs a read and a write.
//
// The order is chosen for crash safety: the first and last MiB of the target are
// wiped first, the image's first MiB is held back in memory, everything else is
// written, the source's length and digest are checked, and only then is the first
// MiB written. A flash that fails, is cancelled or loses power leaves a target with
// no partition table.
//
// Before the target is opened, the decoded size is read where the container
// records it (Inspect tells it to callers, on the same probers): exact for
// raw, qcow2, xz and zstd, a lower bound for gzip's trailer; either refuses a
// device that is too small while it is untouched. An overrun found only while
// writing (bzip2, a pipe) fills the device to its end and says so. A failed
// Flash returns a partial Result: what was read, written and zeroed, and what
// the target holds now.
//
// flash imports no other package of this module but the leaf vocabulary
// (bty/format, bty/gpt, bty/category): sources are anything that satisfies
// Source, and errors wrap a category of bty/category.
package flash
