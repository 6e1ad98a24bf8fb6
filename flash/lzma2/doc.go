// Package lzma2 decodes LZMA2, the compression inside xz files. The flash
// engine's xz reader (flash/decode_xz_reader.go, decode_xz_parallel.go) runs
// it on every block whose only filter is LZMA2, which is every xz image in
// practice. It imports nothing of bty, so it is tested and fuzzed alone,
// against github.com/ulikunitz/xz/lzma and against xz itself.
//
//	io.Reader (a bufio.Reader over the source, or the bytes of one block)
//	  -> chunk header (1-6 bytes): resets, sizes, properties
//	  -> the whole compressed chunk (<= 64 KiB) read into a slice in one call
//	  -> Reader.decode: range coder and LZ in one loop, into the window
//	  -> the window: a circular buffer, returned by Read (copied) or WriteTo (not)
//
// Design, measured against ulikunitz (1.76x xz -dc's time decoding alone, a
// third of it in its range coder and a tenth in its byte-at-a-time input):
//
//   - Input in bulk: a compressed chunk is read whole into a byte slice and
//     the range coder indexes it; no io.ByteReader call per byte.
//   - The range coder lives in local variables of the hot loop (range, code,
//     input position) and every bit goes through bit(), a function of values
//     the compiler inlines and keeps in registers. A method on a struct,
//     tried first, was not inlined and stored its fields on every bit.
//   - The literal's eight bits are unrolled, as in liblzma; tables indexed by
//     state are padded to 16 rows so a mask replaces a bounds check.
//   - Matches copy within the window with copy() (memmove), doubling the run
//     for overlapping sources (a run of zeros is one match at distance 1);
//     matches of up to 8 bytes copy in a byte loop.
//   - No allocation per symbol or chunk: the window, the chunk buffer and
//     the probabilities are reused by Reset, block after block.
//   - The window grows with the output, from 64 KiB to the dictionary size
//     (at least 1 MiB, so that Read has long batches), so memory follows
//     what a stream decodes to, never what its header claims: a header's 1.5
//     GiB dictionary over a 3 MiB block costs 4 MiB.
//
// Measured (2 shared vCPUs, CPU seconds, xz 5.4.1): the bench image of
// bench/flash.sh (1 GiB, 250 MiB of files, 70 MB of xz) decodes in 6.9 s, xz
// -dc in 6.3 s, ulikunitz in 12.8 s: 0.91x xz's throughput. On 126 MB of
// /usr/lib binaries (raw LZMA2, xz -6) 3.0 s against xz's 2.3 s: 0.77x. The
// profile: bit() 53%, the rest of the loop 9%, memmove 9% (matches), CRC64
// of the xz check 9% (on another core in flash), distance and length trees
// the rest. Unrolling the literal gained about 5%; copying short matches
// eight bytes at a time instead of with copy() gained nothing measurable.
//
// Corrupt input is an error wrapping ErrCorrupt with the input offset, never a
// panic or a hang: a match reaching before the dictionary's start, a chunk
// whose range coder does not end exactly at its compressed size (liblzma's
// rule, which ulikunitz does not apply), an end-of-payload marker inside a
// chunk, lc+lp > 4, chunks out of order. A truncated stream wraps
// io.ErrUnexpectedEOF too, after every byte its input determines.
package lzma2
