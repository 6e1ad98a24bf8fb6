package flash

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"slices"
)

// mapClusters reads the active L1 table and each L2 table it points to (in
// one read each), and returns the image with its allocated clusters as
// extents.
func (h qcow2Header) mapClusters(ra io.ReaderAt, srcSize int64) (*qcow2Image, error) {
	q := &qcow2Image{VirtualSize: h.virtualSize, clusterSize: h.clusterSize, zstd: h.zstd}
	l1 := make([]byte, h.l1Entries*8)
	if err := readAtFull(ra, l1, h.l1Off, "L1 table"); err != nil {
		return nil, err
	}
	cs := h.clusterSize
	if err := qcow2DistinctL2(l1, cs, srcSize); err != nil {
		return nil, err
	}
	l2 := make([]byte, min(cs, (q.VirtualSize+cs-1)/cs*h.entrySize()))
	for i := range h.l1Entries {
		l2Off := int64(binary.BigEndian.Uint64(l1[i*8:]) & qcow2OffsetMask)
		if l2Off == 0 {
			continue
		}
		base := i * h.span()
		entries := min(h.l2Entries(), (q.VirtualSize-base+cs-1)/cs)
		tab := l2[:entries*h.entrySize()]
		if err := readAtFull(ra, tab, l2Off, "L2 table"); err != nil {
			return nil, err
		}
		for j := range entries {
			if err := h.mapEntry(q, tab[j*h.entrySize():], base+j*cs, srcSize); err != nil {
				return nil, err
			}
		}
	}
	return q, nil
}

// mapEntry adds what the L2 entry at the start of e maps at guest to q: a
// compressed cluster, a standard one, or the allocated subclusters of an
// extended entry. Unallocated and zero clusters add nothing (they read as
// zeros).
func (h qcow2Header) mapEntry(q *qcow2Image, e []byte, guest, srcSize int64) error {
	be := binary.BigEndian
	cs := h.clusterSize
	entry := be.Uint64(e)
	n := min(cs, q.VirtualSize-guest)
	if entry&qcow2Compressed != 0 {
		csizeShift := 62 - (h.cbits - 8)
		coff := int64(entry & (1<<csizeShift - 1))
		sectors := int64((entry>>csizeShift)&(1<<(h.cbits-8)-1)) + 1
		csize := sectors*512 - coff&511
		switch {
		case coff == 0 || coff > qcow2OffsetMask:
			return fmt.Errorf("%w: qcow2 compressed cluster at guest %#x has invalid offset %#x", ErrCorrupt, guest, coff)
		case srcSize >= 0 && coff >= srcSize:
			return fmt.Errorf("%w: qcow2 compressed cluster at guest %#x starts at %#x, past the end of the file (%d bytes)", ErrCorrupt, guest, coff, srcSize)
		case srcSize >= 0:
			// The sector count rounds up: the last cluster's range may
			// end past the file, whose missing bytes are never needed.
			csize = min(csize, srcSize-coff)
		}
		if err := q.add(qcow2Extent{guest: guest, host: coff, n: uint32(n), csize: uint32(csize)}); err != nil {
			return err
		}
		q.maxCsize = max(q.maxCsize, csize)
		return nil
	}
	host := int64(entry & qcow2OffsetMask)
	if host&(cs-1) != 0 && (h.extL2 || entry&qcow2ZeroFlag == 0) {
		return fmt.Errorf("%w: qcow2 data cluster for guest %#x at unaligned offset %#x", ErrCorrupt, guest, host)
	}
	if !h.extL2 {
		if entry&qcow2ZeroFlag != 0 || host == 0 {
			return nil // reads as zeros
		}
		return q.addStandard(guest, host, n, srcSize)
	}
	bitmap := be.Uint64(e[8:])
	alloc, zero := uint32(bitmap), uint32(bitmap>>32)
	switch {
	case alloc&zero != 0:
		return fmt.Errorf("%w: qcow2 L2 entry for guest %#x marks subclusters both allocated and zero", ErrCorrupt, guest)
	case alloc != 0 && host == 0:
		return fmt.Errorf("%w: qcow2 L2 entry for guest %#x has allocated subclusters but no cluster", ErrCorrupt, guest)
	}
	sub := cs / qcow2Subclusters
	for k := int64(0); alloc != 0; {
		// Each run of allocated subclusters is one range.
		skip := int64(bits.TrailingZeros32(alloc))
		alloc >>= skip
		k += skip
		run := int64(bits.TrailingZeros32(^alloc))
		alloc >>= run
		g := guest + k*sub
		if g < q.VirtualSize {
			if err := q.addStandard(g, host+k*sub, min(run*sub, q.VirtualSize-g), srcSize); err != nil {
				return err
			}
		}
		k += run
	}
	return nil
}

// addStandard records n guest bytes at guest stored uncompressed at host.
func (q *qcow2Image) addStandard(guest, host, n, srcSize int64) error {
	if srcSize >= 0 && host+n > srcSize {
		return fmt.Errorf("%w: qcow2 data cluster for guest %#x at %#x, past the end of the file (%d bytes)", ErrCorrupt, guest, host, srcSize)
	}
	return q.add(qcow2Extent{guest: guest, host: host, n: uint32(n)})
}

// add appends an extent, merging it into the previous one when both are
// standard and consecutive on both sides.
func (q *qcow2Image) add(e qcow2Extent) error {
	if k := len(q.ext); k > 0 && e.csize == 0 {
		last := &q.ext[k-1]
		if last.csize == 0 && last.guest+int64(last.n) == e.guest && last.host+int64(last.n) == e.host && int64(last.n)+int64(e.n) <= qcow2MaxRun {
			last.n += e.n
			q.hostEnd = max(q.hostEnd, last.hostEnd())
			return nil
		}
	}
	if len(q.ext) >= qcow2MaxExtents {
		return fmt.Errorf("%w: qcow2 image too fragmented (more than %d extents); rewrite it first: qemu-img convert -O qcow2 in.qcow2 out.qcow2", ErrUnsupported, qcow2MaxExtents)
	}
	q.ext = append(q.ext, e)
	q.hostEnd = max(q.hostEnd, e.hostEnd())
	return nil
}

// qcow2DistinctL2 checks the L1 table's L2 offsets: cluster aligned, inside the
// file, and no table used twice (qemu never shares one within a table, and a
// hostile image could otherwise make us read one table millions of times).
func qcow2DistinctL2(l1 []byte, cs, srcSize int64) error {
	offs := make([]int64, 0, len(l1)/8)
	for i := 0; i < len(l1); i += 8 {
		off := int64(binary.BigEndian.Uint64(l1[i:]) & qcow2OffsetMask)
		switch {
		case off == 0:
			continue
		case off&(cs-1) != 0:
			return fmt.Errorf("%w: qcow2 L2 table offset %#x not cluster aligned", ErrCorrupt, off)
		case srcSize >= 0 && off >= srcSize:
			return fmt.Errorf("%w: qcow2 L2 table at %#x past the end of the file (%d bytes)", ErrCorrupt, off, srcSize)
		}
		offs = append(offs, off)
	}
	slices.Sort(offs)
	for i := 1; i < len(offs); i++ {
		if offs[i] == offs[i-1] {
			return fmt.Errorf("%w: qcow2 L2 table at %#x used twice by the L1 table", ErrCorrupt, offs[i])
		}
	}
	return nil
}
