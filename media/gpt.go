package media

import (
	"crypto/sha256"
	"encoding/binary"
	"hash/crc32"
	"unicode/utf16"
)

const sectorSize = 512

// guid is a GUID in the byte order the GPT stores it: the first three fields
// little-endian, the rest as written.
type guid [16]byte

// parseGUID reads "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"; it panics on a
// malformed constant.
func parseGUID(s string) guid {
	var raw [16]byte
	j := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '-' {
			continue
		}
		raw[j/2] |= unhex(s[i]) << (4 * (1 - j%2))
		j++
	}
	if j != 32 {
		panic("bad GUID " + s)
	}
	return mixedEndian(raw)
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10
	}
	panic("bad hex digit")
}

// mixedEndian turns a GUID's big-endian text order into the on-disk order.
func mixedEndian(b [16]byte) guid {
	return guid{b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]}
}

// derivedGUID is a version 4 (random-looking) GUID made from a hash of seed
// and label, so a build's GUIDs are unique to its inputs yet reproducible.
func derivedGUID(seed []byte, label string) guid {
	h := sha256.Sum256(append(append([]byte{}, seed...), label...))
	var b [16]byte
	copy(b[:], h[:16])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return mixedEndian(b)
}

var (
	guidESP       = parseGUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
	guidBasicData = parseGUID("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7")
	guidBIOSBoot  = parseGUID("21686148-6449-6E6F-744E-656564454649")
)

// gptPartition is one partition: sectors [first, last], inclusive.
type gptPartition struct {
	typ, id     guid
	first, last uint64
	name        string
}

const (
	gptEntries   = 128
	gptEntrySize = 128
	gptTableLBAs = gptEntries * gptEntrySize / sectorSize // 32
)

// gptLayout returns the first and last usable sectors of a disk of n sectors.
func gptLayout(n uint64) (firstUsable, lastUsable uint64) {
	return 2 + gptTableLBAs, n - 2 - gptTableLBAs
}

// gptRegions renders a GPT disk label for a disk of n sectors: the protective
// MBR, the primary header and table (returned as one buffer for sector 0), and
// the backup table and header (for sector n-1-32).
func gptRegions(n uint64, disk guid, parts []gptPartition) (head, tail []byte) {
	table := make([]byte, gptEntries*gptEntrySize)
	for i, p := range parts {
		e := table[i*gptEntrySize:]
		copy(e[0:], p.typ[:])
		copy(e[16:], p.id[:])
		binary.LittleEndian.PutUint64(e[32:], p.first)
		binary.LittleEndian.PutUint64(e[40:], p.last)
		for j, c := range utf16.Encode([]rune(p.name)) {
			if j == 36 {
				break
			}
			binary.LittleEndian.PutUint16(e[56+2*j:], c)
		}
	}
	tableCRC := crc32.ChecksumIEEE(table)
	firstUsable, lastUsable := gptLayout(n)

	header := func(my, alt, tableLBA uint64) []byte {
		h := make([]byte, sectorSize)
		copy(h, "EFI PART")
		binary.LittleEndian.PutUint32(h[8:], 0x00010000) // revision 1.0
		binary.LittleEndian.PutUint32(h[12:], 92)        // header size
		binary.LittleEndian.PutUint64(h[24:], my)
		binary.LittleEndian.PutUint64(h[32:], alt)
		binary.LittleEndian.PutUint64(h[40:], firstUsable)
		binary.LittleEndian.PutUint64(h[48:], lastUsable)
		copy(h[56:], disk[:])
		binary.LittleEndian.PutUint64(h[72:], tableLBA)
		binary.LittleEndian.PutUint32(h[80:], gptEntries)
		binary.LittleEndian.PutUint32(h[84:], gptEntrySize)
		binary.LittleEndian.PutUint32(h[88:], tableCRC)
		binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
		return h
	}

	// The protective MBR: one partition of type 0xEE over the whole disk (or
	// as much of it as 32 bits count), so MBR-only tools see it as in use.
	head = make([]byte, (2+gptTableLBAs)*sectorSize)
	mbr := head[446:]
	mbr[1], mbr[2], mbr[3] = 0x00, 0x02, 0x00 // CHS of sector 1
	mbr[4] = 0xee
	mbr[5], mbr[6], mbr[7] = 0xff, 0xff, 0xff
	binary.LittleEndian.PutUint32(mbr[8:], 1)
	binary.LittleEndian.PutUint32(mbr[12:], uint32(min(n-1, 0xffffffff)))
	head[510], head[511] = 0x55, 0xaa
	copy(head[sectorSize:], header(1, n-1, 2))
	copy(head[2*sectorSize:], table)

	tail = make([]byte, (gptTableLBAs+1)*sectorSize)
	copy(tail, table)
	copy(tail[gptTableLBAs*sectorSize:], header(n-1, 1, n-1-gptTableLBAs))
	return head, tail
}
