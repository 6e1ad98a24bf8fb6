package flash

import (
	"encoding/binary"
	"hash/crc32"
)

// relocateGPT moves the backup GPT to the real end of a target larger than the
// image, as `sgdisk -e` does: the primary header (in the held-back first MiB)
// gets the new alternate and last usable LBAs, and a backup header and entry
// array are built for the last sectors. It returns the backup's bytes and offset,
// or ok == false when there is nothing to do (no GPT, a file target, a disk of
// the image's size, or a GPT it does not understand).
func relocateGPT(head []byte, lbs, diskSize int64) (backup []byte, off int64, ok bool) {
	if lbs < 512 || int64(len(head)) < 2*lbs || diskSize <= 0 {
		return nil, 0, false
	}
	h := head[lbs : 2*lbs]
	if string(h[:8]) != "EFI PART" {
		return nil, 0, false
	}
	le := binary.LittleEndian
	hdrSize := int64(le.Uint32(h[12:16]))
	if hdrSize < 92 || hdrSize > lbs || crcHeader(h[:hdrSize]) != le.Uint32(h[16:20]) {
		return nil, 0, false
	}
	lastLBA := diskSize/lbs - 1
	if int64(le.Uint64(h[32:40])) == lastLBA {
		return nil, 0, false
	}
	entryLBA := int64(le.Uint64(h[72:80]))
	entries := int64(le.Uint32(h[80:84])) * int64(le.Uint32(h[84:88]))
	if entryLBA < 2 || entries <= 0 || entryLBA*lbs+entries > int64(len(head)) {
		return nil, 0, false
	}
	arr := head[entryLBA*lbs : entryLBA*lbs+entries]
	if crc32.ChecksumIEEE(arr) != le.Uint32(h[88:92]) {
		return nil, 0, false
	}
	entrySectors := (entries + lbs - 1) / lbs
	if lastLBA-entrySectors-1 < int64(le.Uint64(h[48:56])) {
		return nil, 0, false // the disk is not larger than the image's GPT says
	}

	le.PutUint64(h[32:40], uint64(lastLBA))
	le.PutUint64(h[48:56], uint64(lastLBA-entrySectors-1))
	le.PutUint32(h[16:20], crcHeader(h[:hdrSize]))

	backup = alignedBuf(int((entrySectors + 1) * lbs))
	copy(backup, arr)
	b := backup[entrySectors*lbs:]
	copy(b, h[:hdrSize])
	le.PutUint64(b[24:32], uint64(lastLBA))
	le.PutUint64(b[32:40], 1)
	le.PutUint64(b[72:80], uint64(lastLBA-entrySectors))
	le.PutUint32(b[16:20], crcHeader(b[:hdrSize]))

	// The protective MBR's 0xEE partition should span the disk (capped at 2^32-1).
	if len(head) >= 512 && head[510] == 0x55 && head[511] == 0xaa && head[446+4] == 0xee {
		le.PutUint32(head[446+12:446+16], uint32(min(lastLBA, 0xffffffff)))
	}
	return backup, (lastLBA - entrySectors) * lbs, true
}

// crcHeader is the header CRC32 computed with the CRC field taken as zero.
func crcHeader(h []byte) uint32 {
	c := crc32.NewIEEE()
	c.Write(h[:16])
	c.Write([]byte{0, 0, 0, 0})
	c.Write(h[20:])
	return c.Sum32()
}
