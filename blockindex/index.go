package blockindex

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// DefaultBlockSize is the block size bty serve indexes images with. See
// docs/delta.md for the measurement behind it.
const DefaultBlockSize = 1 << 20

// Limits of an index, checked by Compute and Decode. MinBlockSize is the
// largest logical sector of a disk (4 KiB), so a block is always whole sectors.
// MaxBlockSize bounds the memory one block takes. MaxBlocks bounds an index at
// 4 Mi blocks (128 MiB of digests): 4 TiB at the default block size.
const (
	MinBlockSize = 4 << 10
	MaxBlockSize = 64 << 20
	MaxBlocks    = 1 << 22
)

// Index is the block index of a decoded image.
type Index struct {
	BlockSize int64      // a power of two, MinBlockSize to MaxBlockSize
	Length    int64      // the decoded image's length in bytes
	Digest    string     // "sha256:<hex>" of the decoded image
	Blocks    [][32]byte // sha256 of each block; the last may be short
}

// The encoding (docs/delta.md): a 72-byte header, the block digests, and the
// sha256 of everything before it. Integers are little-endian.
const (
	magic      = "BTYINDEX"
	version    = 1
	headerLen  = 72
	digestLen  = 32
	trailerLen = 32
)

// Encode writes ix in the encoding Decode reads. It refuses an index that
// Decode would refuse.
func (ix *Index) Encode(w io.Writer) error {
	if err := ix.check(); err != nil {
		return err
	}
	sum, _ := parseDigest(ix.Digest)
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, h), 64<<10)
	var hdr [headerLen]byte
	copy(hdr[:], magic)
	binary.LittleEndian.PutUint32(hdr[8:], version)
	binary.LittleEndian.PutUint64(hdr[16:], uint64(ix.BlockSize))
	binary.LittleEndian.PutUint64(hdr[24:], uint64(ix.Length))
	copy(hdr[32:64], sum[:])
	binary.LittleEndian.PutUint64(hdr[64:], uint64(len(ix.Blocks)))
	bw.Write(hdr[:])
	for _, b := range ix.Blocks {
		bw.Write(b[:])
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	_, err := w.Write(h.Sum(nil))
	return err
}

// Decode reads an index written by Encode. It refuses, with an error naming
// what is wrong: a wrong magic or version, a block size or length out of
// bounds, a block count that does not match the length, a truncated index,
// a trailing checksum that does not match, and bytes after the end. Memory
// grows with the bytes actually read, not with what the header claims.
func Decode(r io.Reader) (*Index, error) {
	h := sha256.New()
	tr := io.TeeReader(r, h)
	var hdr [headerLen]byte
	if n, err := io.ReadFull(tr, hdr[:]); err != nil {
		return nil, truncated(fmt.Sprintf("the header (%d of %d bytes)", n, headerLen), err)
	}
	if string(hdr[:8]) != magic {
		return nil, corruptf("block index: it does not start with %q: it is not a bty block index", magic)
	}
	if v := binary.LittleEndian.Uint32(hdr[8:]); v != version {
		return nil, corruptf("block index: version %d: this bty reads version %d (upgrade bty)", v, version)
	}
	if f := binary.LittleEndian.Uint32(hdr[12:]); f != 0 {
		return nil, corruptf("block index: flags %#x: version %d has none", f, version)
	}
	bs, length, count := binary.LittleEndian.Uint64(hdr[16:]), binary.LittleEndian.Uint64(hdr[24:]), binary.LittleEndian.Uint64(hdr[64:])
	if bs > MaxBlockSize {
		return nil, corruptf("block index: block size %d is out of bounds (%d to %d, a power of two)", bs, MinBlockSize, MaxBlockSize)
	}
	if length > MaxBlocks*MaxBlockSize {
		return nil, corruptf("block index: image length %d is larger than an index can cover", length)
	}
	ix := &Index{BlockSize: int64(bs), Length: int64(length), Digest: "sha256:" + hex.EncodeToString(hdr[32:64])}
	if err := ix.checkHeader(); err != nil {
		return nil, err
	}
	if want := ix.blockCount(); count != uint64(want) {
		return nil, corruptf("block index: %d block digests for %d bytes in blocks of %d: want %d", count, length, bs, want)
	}
	// Read the digests in pieces, so that a header claiming millions of
	// blocks costs memory only as far as the bytes are there.
	const piece = 1 << 15
	for read := uint64(0); read < count; {
		k := min(count-read, piece)
		buf := make([]byte, k*digestLen)
		if n, err := io.ReadFull(tr, buf); err != nil {
			return nil, truncated(fmt.Sprintf("the block digests (%d of %d)", read+uint64(n)/digestLen, count), err)
		}
		for i := range k {
			ix.Blocks = append(ix.Blocks, [32]byte(buf[i*digestLen:]))
		}
		read += k
	}
	want := h.Sum(nil)
	var got [trailerLen]byte
	if n, err := io.ReadFull(r, got[:]); err != nil {
		return nil, truncated(fmt.Sprintf("the checksum (%d of %d bytes)", n, trailerLen), err)
	}
	if !bytes.Equal(got[:], want) {
		return nil, corruptf("block index: its checksum does not match its contents: it was damaged in transit or storage")
	}
	var one [1]byte
	if n, _ := io.ReadFull(r, one[:]); n > 0 {
		return nil, corruptf("block index: bytes follow its checksum")
	}
	return ix, nil
}

// Len returns the length of block i (the last may be short).
func (ix *Index) Len(i int) int64 {
	return min(ix.BlockSize, ix.Length-int64(i)*ix.BlockSize)
}

// Hex returns a block digest as the lower-case hex of its route and file name.
func Hex(sum [32]byte) string { return hex.EncodeToString(sum[:]) }

// ParseHex is the inverse of Hex: it accepts exactly 64 lower-case hex
// digits, the only spelling of a digest in a route or a file name.
func ParseHex(s string) ([32]byte, bool) {
	var sum [32]byte
	if len(s) != 2*len(sum) || strings.ToLower(s) != s {
		return sum, false
	}
	_, err := hex.Decode(sum[:], []byte(s))
	return sum, err == nil
}

// blockCount is the number of blocks of Length bytes.
func (ix *Index) blockCount() int64 {
	return (ix.Length + ix.BlockSize - 1) / ix.BlockSize
}

// checkHeader checks the fields other than Blocks.
func (ix *Index) checkHeader() error {
	bs := ix.BlockSize
	if bs < MinBlockSize || bs > MaxBlockSize || bs&(bs-1) != 0 {
		return corruptf("block index: block size %d is out of bounds (%d to %d, a power of two)", bs, MinBlockSize, MaxBlockSize)
	}
	if ix.Length < 0 || ix.blockCount() > MaxBlocks {
		return corruptf("block index: image length %d in blocks of %d makes more than %d blocks", ix.Length, bs, MaxBlocks)
	}
	if _, err := parseDigest(ix.Digest); err != nil {
		return err
	}
	return nil
}

func (ix *Index) check() error {
	if err := ix.checkHeader(); err != nil {
		return err
	}
	if want := ix.blockCount(); int64(len(ix.Blocks)) != want {
		return corruptf("block index: %d block digests for %d bytes in blocks of %d: want %d", len(ix.Blocks), ix.Length, ix.BlockSize, want)
	}
	return nil
}

func parseDigest(d string) ([32]byte, error) {
	x, ok := strings.CutPrefix(d, "sha256:")
	sum, hexOK := ParseHex(x)
	if !ok || !hexOK {
		return sum, corruptf("block index: image digest %q is not sha256:<64 lower-case hex digits>", d)
	}
	return sum, nil
}

// truncated reports an index that ended inside what, or a read error.
func truncated(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return corruptf("block index: truncated in %s", what)
	}
	return fmt.Errorf("block index: reading %s: %w", what, err)
}
