// Package gpt encodes and decodes the GUID partition table's structures
// (UEFI 2.10, section 5): the protective MBR, the header with its CRC32, the
// partition entry array. media and demo lay a GPT out; flash moves the
// backup GPT of an image to the end of a larger disk.
//
//	sector 0          protective MBR (one 0xEE partition over the disk)
//	sector 1          primary header  -> entry array at sector 2
//	sectors 2..33     entry array (128 entries of 128 bytes, 512-byte sectors)
//	...               partitions, FirstUsableLBA..LastUsableLBA
//	sectors n-33..n-2 backup entry array
//	sector n-1        backup header   -> entry array at n-33
//
// It imports nothing of bty's.
package gpt

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"strings"
	"unicode/utf16"
)

const (
	Signature  = "EFI PART"
	Revision   = 0x00010000 // 1.0
	HeaderSize = 92         // the defined fields; the CRC may cover more
	EntrySize  = 128
	Entries    = 128 // the usual size of the entry array: 16 KiB
)

// GUID is a GUID in the byte order the GPT stores it: the first three fields
// little-endian, the rest as written.
type GUID [16]byte

// MustParseGUID reads "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"; it panics on a
// malformed constant.
func MustParseGUID(s string) GUID {
	var b [16]byte
	if n, err := hex.Decode(b[:], []byte(strings.ReplaceAll(s, "-", ""))); err != nil || n != 16 || len(s) != 36 {
		panic("gpt: bad GUID " + s)
	}
	return GUIDFromBytes(b)
}

// GUIDFromBytes is the GUID whose text form reads b in order (RFC 4122 byte
// order), in the GPT's byte order.
func GUIDFromBytes(b [16]byte) GUID {
	return GUID{b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]}
}

// Header is a GPT header.
type Header struct {
	Revision       uint32 // 0: Revision
	Size           uint32 // bytes the CRC covers: HeaderSize, or more (0: HeaderSize)
	MyLBA          uint64
	AlternateLBA   uint64 // the other header
	FirstUsableLBA uint64
	LastUsableLBA  uint64
	DiskGUID       GUID
	EntriesLBA     uint64 // where this header's entry array starts
	NumEntries     uint32
	EntrySize      uint32
	EntriesCRC     uint32 // CRC32 of the entry array
}

// ErrHeader: the bytes are not a GPT header: no signature, a size outside
// HeaderSize..len(b), or a CRC that does not match.
var ErrHeader = errors.New("not a valid GPT header")

var le = binary.LittleEndian

// ParseHeader reads the header at the start of b, a sector, and checks its
// signature, size and CRC.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize || string(b[:8]) != Signature {
		return Header{}, ErrHeader
	}
	h := Header{Revision: le.Uint32(b[8:]), Size: le.Uint32(b[12:])}
	if h.Size < HeaderSize || int64(h.Size) > int64(len(b)) || headerCRC(b[:h.Size]) != le.Uint32(b[16:]) {
		return Header{}, ErrHeader
	}
	h.MyLBA = le.Uint64(b[24:])
	h.AlternateLBA = le.Uint64(b[32:])
	h.FirstUsableLBA = le.Uint64(b[40:])
	h.LastUsableLBA = le.Uint64(b[48:])
	copy(h.DiskGUID[:], b[56:72])
	h.EntriesLBA = le.Uint64(b[72:])
	h.NumEntries = le.Uint32(b[80:])
	h.EntrySize = le.Uint32(b[84:])
	h.EntriesCRC = le.Uint32(b[88:])
	return h, nil
}

// Put writes h at the start of b, which holds at least h.Size bytes, with
// its CRC. The reserved bytes of b (20 to 24, and HeaderSize to Size) are
// kept: the CRC covers them as they are.
func (h Header) Put(b []byte) {
	if h.Revision == 0 {
		h.Revision = Revision
	}
	if h.Size == 0 {
		h.Size = HeaderSize
	}
	copy(b, Signature)
	le.PutUint32(b[8:], h.Revision)
	le.PutUint32(b[12:], h.Size)
	le.PutUint64(b[24:], h.MyLBA)
	le.PutUint64(b[32:], h.AlternateLBA)
	le.PutUint64(b[40:], h.FirstUsableLBA)
	le.PutUint64(b[48:], h.LastUsableLBA)
	copy(b[56:72], h.DiskGUID[:])
	le.PutUint64(b[72:], h.EntriesLBA)
	le.PutUint32(b[80:], h.NumEntries)
	le.PutUint32(b[84:], h.EntrySize)
	le.PutUint32(b[88:], h.EntriesCRC)
	le.PutUint32(b[16:], headerCRC(b[:h.Size]))
}

// headerCRC is the CRC32 of a header with its CRC field taken as zero.
func headerCRC(h []byte) uint32 {
	c := crc32.NewIEEE()
	c.Write(h[:16])
	c.Write([]byte{0, 0, 0, 0})
	c.Write(h[20:])
	return c.Sum32()
}

// ArrayCRC is the CRC32 of an entry array, as a header records it.
func ArrayCRC(array []byte) uint32 { return crc32.ChecksumIEEE(array) }

// Partition is one entry: sectors First to Last, inclusive.
type Partition struct {
	Type, ID    GUID
	First, Last uint64
	Name        string // at most 36 UTF-16 code units are kept
}

// EntryArray returns the entry array of parts: Entries entries of EntrySize
// bytes, the unused ones zero.
func EntryArray(parts []Partition) []byte {
	a := make([]byte, Entries*EntrySize)
	for i, p := range parts {
		e := a[i*EntrySize:]
		copy(e[0:], p.Type[:])
		copy(e[16:], p.ID[:])
		le.PutUint64(e[32:], p.First)
		le.PutUint64(e[40:], p.Last)
		for j, c := range utf16.Encode([]rune(p.Name)) {
			if j == 36 {
				break
			}
			le.PutUint16(e[56+2*j:], c)
		}
	}
	return a
}

// ProtectiveMBR writes a protective MBR into b, sector 0 (512 bytes at
// least): one partition of type 0xEE from sector 1 to lastLBA (as far as 32
// bits count), so that MBR-only tools see the disk as in use, and the boot
// signature.
func ProtectiveMBR(b []byte, lastLBA uint64) {
	e := b[446:462]
	e[1], e[2], e[3] = 0x00, 0x02, 0x00 // CHS of sector 1
	e[4] = 0xee
	e[5], e[6], e[7] = 0xff, 0xff, 0xff
	le.PutUint32(e[8:], 1)
	le.PutUint32(e[12:], uint32(min(lastLBA, 0xffffffff)))
	b[510], b[511] = 0x55, 0xaa
}

// ResizeProtectiveMBR makes the protective partition of the MBR in b reach
// lastLBA (as far as 32 bits count); it reports false, and leaves b alone,
// when b holds no protective MBR.
func ResizeProtectiveMBR(b []byte, lastLBA uint64) bool {
	if len(b) < 512 || b[510] != 0x55 || b[511] != 0xaa || b[446+4] != 0xee {
		return false
	}
	le.PutUint32(b[446+12:], uint32(min(lastLBA, 0xffffffff)))
	return true
}

// ArrayLBAs is how many sectors of lbs bytes the usual entry array takes.
func ArrayLBAs(lbs uint64) uint64 { return (Entries*EntrySize + lbs - 1) / lbs }

// Usable returns the first and last sectors that partitions may use on a
// disk of n sectors of lbs bytes with the usual entry array.
func Usable(lbs, n uint64) (first, last uint64) {
	return 2 + ArrayLBAs(lbs), n - 2 - ArrayLBAs(lbs)
}

// Layout renders the GPT of a disk of n sectors of lbs bytes: head for the
// start of the disk (the protective MBR, the primary header, the entry
// array) and tail for its last sectors (the backup entry array and header).
func Layout(lbs, n uint64, disk GUID, parts []Partition) (head, tail []byte) {
	array := EntryArray(parts)
	first, last := Usable(lbs, n)
	arrayLBAs := ArrayLBAs(lbs)
	h := Header{
		MyLBA: 1, AlternateLBA: n - 1, FirstUsableLBA: first, LastUsableLBA: last, DiskGUID: disk,
		EntriesLBA: 2, NumEntries: Entries, EntrySize: EntrySize, EntriesCRC: ArrayCRC(array),
	}
	head = make([]byte, (2+arrayLBAs)*lbs)
	ProtectiveMBR(head, n-1)
	h.Put(head[lbs:])
	copy(head[2*lbs:], array)

	tail = make([]byte, (arrayLBAs+1)*lbs)
	copy(tail, array)
	h.MyLBA, h.AlternateLBA, h.EntriesLBA = n-1, 1, n-1-arrayLBAs
	h.Put(tail[arrayLBAs*lbs:])
	return head, tail
}
