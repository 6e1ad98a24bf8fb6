// Package lzma2 decodes LZMA2, the compression inside xz files, fast: the
// flash engine's xz decoder (flash/decode_xz.go) runs it on every block whose
// only filter is LZMA2. It imports nothing of bty, so it can be tested and
// fuzzed alone, against github.com/ulikunitz/xz/lzma and xz itself.
package lzma2
