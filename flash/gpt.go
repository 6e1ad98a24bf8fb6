package flash

import "bty/gpt"

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
	sector := head[lbs : 2*lbs]
	h, err := gpt.ParseHeader(sector)
	if err != nil {
		return nil, 0, false
	}
	lastLBA := diskSize/lbs - 1
	if int64(h.AlternateLBA) == lastLBA {
		return nil, 0, false
	}
	// The entry array must lie in the held-back head (an image's does, at
	// sector 2), whatever numbers a hostile header holds.
	entryLBA := int64(h.EntriesLBA)
	entries := int64(h.NumEntries) * int64(h.EntrySize)
	if entryLBA < 2 || entryLBA > int64(len(head))/lbs || entries <= 0 || entryLBA*lbs+entries > int64(len(head)) {
		return nil, 0, false
	}
	arr := head[entryLBA*lbs : entryLBA*lbs+entries]
	if gpt.ArrayCRC(arr) != h.EntriesCRC {
		return nil, 0, false
	}
	entrySectors := (entries + lbs - 1) / lbs
	if lastLBA-entrySectors-1 < int64(h.LastUsableLBA) {
		return nil, 0, false // the disk is not larger than the image's GPT says
	}

	h.AlternateLBA, h.LastUsableLBA = uint64(lastLBA), uint64(lastLBA-entrySectors-1)
	h.Put(sector)

	backup = alignedBuf(int((entrySectors + 1) * lbs))
	copy(backup, arr)
	b := backup[entrySectors*lbs:]
	copy(b, sector[:h.Size])
	h.MyLBA, h.AlternateLBA, h.EntriesLBA = uint64(lastLBA), 1, uint64(lastLBA-entrySectors)
	h.Put(b)

	// The protective MBR's 0xEE partition should span the disk.
	gpt.ResizeProtectiveMBR(head, uint64(lastLBA))
	return backup, (lastLBA - entrySectors) * lbs, true
}
