package media

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf16"
)

// An exFAT file system written in one go, for the BTY_IMAGES partition
// (Microsoft's exFAT specification): the boot region and its backup, one FAT,
// and in the cluster heap the allocation bitmap, the up-case table, the root
// directory and the files, each in consecutive clusters with its FAT chain.
// Files are streamed from their sources; all-zero blocks are not written, so
// the output (a new, sparse file) stays sparse. Every timestamp is 1980-01-01
// 00:00.

// exfatFile is a file of the root directory.
type exfatFile struct {
	name string
	size int64
	open func() (io.ReadCloser, error)
}

// exfatClusterShift picks the cluster size (as a power of two of sectors) that
// mkfs.exfat picks for a volume of n sectors: 4 KiB below 256 MiB, 32 KiB
// below 32 GiB, else 128 KiB.
func exfatClusterShift(n uint64) uint8 {
	switch bytes := n * sectorSize; {
	case bytes < 256<<20:
		return 3
	case bytes < 32<<30:
		return 6
	}
	return 8
}

const exfatAlign = 2048 // sectors: the FAT and the cluster heap start on MiB boundaries

// exfatLayout is where things go, in sectors from the volume's start.
type exfatLayout struct {
	sectors      uint64
	clusterShift uint8
	fatOffset    uint32
	fatLength    uint32
	heapOffset   uint32
	clusterCount uint32
}

func newExfatLayout(n uint64) (exfatLayout, error) {
	l := exfatLayout{sectors: n, clusterShift: exfatClusterShift(n), fatOffset: exfatAlign}
	spc := uint64(1) << l.clusterShift
	if n < 4*exfatAlign {
		return l, inputf("images partition of %d sectors is too small for exFAT", n)
	}
	l.fatLength = uint32((n/spc+2)*4+sectorSize-1) / sectorSize
	l.heapOffset = uint32((uint64(l.fatOffset)+uint64(l.fatLength)+exfatAlign-1)/exfatAlign) * exfatAlign
	if uint64(l.heapOffset) >= n {
		return l, inputf("images partition of %d sectors is too small for exFAT", n)
	}
	l.clusterCount = uint32((n - uint64(l.heapOffset)) / spc)
	return l, nil
}

func (l exfatLayout) clusterBytes() int64 { return sectorSize << l.clusterShift }

// clusters returns how many clusters n bytes take.
func (l exfatLayout) clusters(n int64) uint32 {
	return uint32((n + l.clusterBytes() - 1) / l.clusterBytes())
}

// exfatFree returns the bytes left free on a volume of n sectors once files
// are on it; negative when they do not fit.
func exfatFree(n uint64, files []exfatFile) (int64, error) {
	l, err := newExfatLayout(n)
	if err != nil {
		return 0, err
	}
	// Counted in int64: the clusters needed can exceed the clusters there are.
	need := int64(l.clusters(int64(l.clusterCount+7)/8)) + int64(l.clusters(int64(len(upcaseTable())))) + int64(l.clusters(int64(exfatRootEntries(files))*32))
	for _, f := range files {
		need += int64(l.clusters(f.size))
	}
	return (int64(l.clusterCount) - need) * l.clusterBytes(), nil
}

// exfatSizeFor returns a volume size in sectors, a multiple of exfatAlign,
// that holds files with at least slack bytes to spare.
func exfatSizeFor(files []exfatFile, slack int64) uint64 {
	n := uint64(8 * exfatAlign)
	for {
		if free, err := exfatFree(n, files); err == nil && free >= slack {
			return n
		}
		n += max(n/16, exfatAlign) / exfatAlign * exfatAlign
	}
}

// exfatRootEntries counts the root directory's 32-byte entries: the volume
// label, the bitmap, the up-case table, and a file, a stream extension and
// the file name entries (15 characters each) per file.
func exfatRootEntries(files []exfatFile) int {
	n := 3
	for _, f := range files {
		n += 2 + (len(utf16.Encode([]rune(f.name)))+14)/15
	}
	return n
}

// checkExfatName reports whether exFAT can hold name.
func checkExfatName(name string) error {
	u := utf16.Encode([]rune(name))
	if len(u) == 0 || len(u) > 255 {
		return inputf("file name %q: exFAT names have 1 to 255 characters", name)
	}
	for _, c := range name {
		if c < 0x20 || strings.ContainsRune(`"*/:<>?\|`, c) {
			return inputf("file name %q: exFAT names cannot hold %q", name, c)
		}
	}
	return nil
}

// upcaseTable returns the volume's up-case table, compressed: runs of
// characters that are their own upper case are written as 0xFFFF and the run's
// length. The mapping is Go's simple upper-case mapping of the Basic
// Multilingual Plane; only the table's own consistency matters to exFAT (names
// are compared and hashed through it).
var upcaseTable = sync.OnceValue(func() []byte {
	var u []uint16
	for c := 0; c <= 0xffff; {
		if up := upper16(uint16(c)); up != uint16(c) {
			u = append(u, up)
			c++
			continue
		}
		run := 0
		for c+run <= 0xffff && upper16(uint16(c+run)) == uint16(c+run) {
			run++
		}
		if run < 3 && c+run <= 0xffff {
			// Short runs cost less written out; the last run is always
			// compressed so the table never ends in a literal 0xFFFF.
			for range run {
				u = append(u, uint16(c))
				c++
			}
			continue
		}
		u = append(u, 0xffff, uint16(run))
		c += run
	}
	b := make([]byte, 2*len(u))
	for i, v := range u {
		binary.LittleEndian.PutUint16(b[2*i:], v)
	}
	return b
})

func upper16(c uint16) uint16 {
	if c >= 0xd800 && c <= 0xdfff {
		return c
	}
	u := unicode.ToUpper(rune(c))
	if u > 0xffff {
		return c
	}
	return uint16(u)
}

// exfatSum32 is the spec's 32-bit checksum (boot region, up-case table);
// skip says which byte offsets are left out.
func exfatSum32(sum uint32, b []byte, skip func(i int) bool) uint32 {
	for i, c := range b {
		if skip != nil && skip(i) {
			continue
		}
		sum = (sum>>1 | sum<<31) + uint32(c)
	}
	return sum
}

func exfatNameHash(name []uint16) uint16 {
	var h uint16
	for _, c := range name {
		u := upper16(c)
		for _, b := range []byte{byte(u), byte(u >> 8)} {
			h = (h>>1 | h<<15) + uint16(b)
		}
	}
	return h
}

const exfatTimestamp = 0x00210000 // 1980-01-01 00:00:00 in the DOS date and time format

// writeExFAT writes an exFAT file system of n sectors at offset base of w
// (which must read as zeros where nothing is written before the cluster
// heap). partOffset is the partition's first sector on the disk. Without
// dense, the files' all-zero blocks are not written: w must read as zeros
// there too; dense (on a disk that holds old data) writes every cluster in
// use whole, zeros included.
func writeExFAT(w io.WriterAt, base int64, n, partOffset uint64, label string, serial uint32, files []exfatFile, dense bool) error {
	l, err := newExfatLayout(n)
	if err != nil {
		return err
	}
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b exfatFile) int { return strings.Compare(a.name, b.name) })
	seen := map[string]bool{}
	for _, f := range files {
		if err := checkExfatName(f.name); err != nil {
			return err
		}
		// exFAT compares names without case.
		key := string(utf16ToBytes(upcaseAll(utf16.Encode([]rune(f.name)))))
		if seen[key] {
			return inputf("file name %q: another file differs only in case", f.name)
		}
		seen[key] = true
	}

	fat := make([]uint32, l.clusterCount+2)
	fat[0], fat[1] = 0xfffffff8, 0xffffffff
	next := uint32(2)
	alloc := func(size int64) (uint32, error) {
		k := l.clusters(size)
		if k == 0 {
			return 0, nil
		}
		if uint64(next)+uint64(k) > uint64(l.clusterCount)+2 {
			return 0, inputf("images partition of %d MiB is too small for the images: give a larger --size", n*sectorSize>>20)
		}
		first := next
		for c := first; c < first+k-1; c++ {
			fat[c] = c + 1
		}
		fat[first+k-1] = 0xffffffff
		next += k
		return first, nil
	}
	clusterOff := func(c uint32) int64 {
		return base + (int64(l.heapOffset)+int64(c-2)<<l.clusterShift)*sectorSize
	}

	bitmapLen := int64(l.clusterCount+7) / 8
	bitmapCluster, err := alloc(bitmapLen)
	if err != nil {
		return err
	}
	upcase := upcaseTable()
	upcaseCluster, err := alloc(int64(len(upcase)))
	if err != nil {
		return err
	}
	rootLen := int64(exfatRootEntries(files)) * 32
	rootCluster, err := alloc(max(rootLen, 1))
	if err != nil {
		return err
	}
	firsts := make([]uint32, len(files))
	for i, f := range files {
		if firsts[i], err = alloc(f.size); err != nil {
			return err
		}
	}

	root := exfatRootDir(int64(l.clusters(max(rootLen, 1)))*l.clusterBytes(), label, bitmapCluster, bitmapLen, upcase, upcaseCluster, files, firsts)

	// The allocation bitmap: bit i is cluster i+2.
	bitmap := make([]byte, bitmapLen)
	for c := uint32(2); c < next; c++ {
		bitmap[(c-2)/8] |= 1 << ((c - 2) % 8)
	}

	// Densely, the rest of each last cluster is zeroed too: what the disk
	// held before shows only in free clusters, and the same inputs give
	// the same bytes on any disk.
	slack := func(c uint32, size int64) error {
		if !dense || size == 0 {
			return nil
		}
		return zeroAt(w, clusterOff(c)+size, int64(l.clusters(size))*l.clusterBytes()-size)
	}
	for _, r := range []struct {
		cluster uint32
		data    []byte
	}{{bitmapCluster, bitmap}, {upcaseCluster, upcase}, {rootCluster, root}} {
		if _, err := w.WriteAt(r.data, clusterOff(r.cluster)); err != nil {
			return err
		}
		if err := slack(r.cluster, int64(len(r.data))); err != nil {
			return err
		}
	}
	for i, f := range files {
		if f.size == 0 {
			continue
		}
		if err := copyFileAt(w, clusterOff(firsts[i]), f, dense); err != nil {
			return err
		}
		if err := slack(firsts[i], f.size); err != nil {
			return err
		}
	}

	fatBytes := make([]byte, int64(l.fatLength)*sectorSize)
	for i, v := range fat {
		binary.LittleEndian.PutUint32(fatBytes[4*i:], v)
	}
	if _, err := w.WriteAt(fatBytes, base+int64(l.fatOffset)*sectorSize); err != nil {
		return err
	}

	boot := exfatBootRegion(l, partOffset, serial, uint8(uint64(next-2)*100/uint64(l.clusterCount)), rootCluster)
	for _, at := range []int64{0, 12} {
		if _, err := w.WriteAt(boot, base+at*sectorSize); err != nil {
			return err
		}
	}
	return nil
}

// exfatRootDir is the root directory, size bytes: the volume label, the
// allocation bitmap's and the up-case table's entries, then each file's entry
// set (file, stream extension, names) with its first cluster.
func exfatRootDir(size int64, label string, bitmapCluster uint32, bitmapLen int64, upcase []byte, upcaseCluster uint32, files []exfatFile, firsts []uint32) []byte {
	root := make([]byte, size)
	e := root
	labelU := utf16.Encode([]rune(label))
	e[0] = 0x83
	e[1] = byte(len(labelU))
	for i, c := range labelU {
		binary.LittleEndian.PutUint16(e[2+2*i:], c)
	}
	e = e[32:]
	e[0] = 0x81
	binary.LittleEndian.PutUint32(e[20:], bitmapCluster)
	binary.LittleEndian.PutUint64(e[24:], uint64(bitmapLen))
	e = e[32:]
	e[0] = 0x82
	binary.LittleEndian.PutUint32(e[4:], exfatSum32(0, upcase, nil))
	binary.LittleEndian.PutUint32(e[20:], upcaseCluster)
	binary.LittleEndian.PutUint64(e[24:], uint64(len(upcase)))
	e = e[32:]
	for i, f := range files {
		name := utf16.Encode([]rune(f.name))
		nameEntries := (len(name) + 14) / 15
		set := e[:32*(2+nameEntries)]
		set[0] = 0x85
		set[1] = byte(1 + nameEntries)
		binary.LittleEndian.PutUint16(set[4:], 0x20) // archive
		binary.LittleEndian.PutUint32(set[8:], exfatTimestamp)
		binary.LittleEndian.PutUint32(set[12:], exfatTimestamp)
		binary.LittleEndian.PutUint32(set[16:], exfatTimestamp)
		s := set[32:]
		s[0] = 0xc0
		s[1] = 0x01 // allocation possible; the FAT chain is valid
		s[3] = byte(len(name))
		binary.LittleEndian.PutUint16(s[4:], exfatNameHash(name))
		binary.LittleEndian.PutUint64(s[8:], uint64(f.size)) // valid data length
		binary.LittleEndian.PutUint32(s[20:], firsts[i])
		binary.LittleEndian.PutUint64(s[24:], uint64(f.size))
		for j := range nameEntries {
			ne := set[64+32*j:]
			ne[0] = 0xc1
			for k := 0; k < 15 && 15*j+k < len(name); k++ {
				binary.LittleEndian.PutUint16(ne[2+2*k:], name[15*j+k])
			}
		}
		var sum uint16
		for k, c := range set {
			if k == 2 || k == 3 {
				continue
			}
			sum = (sum>>1 | sum<<15) + uint16(c)
		}
		binary.LittleEndian.PutUint16(set[2:], sum)
		e = e[len(set):]
	}
	return root
}

// exfatBootRegion renders the 12 sectors of the boot region: the boot sector,
// eight extended boot sectors, the OEM parameters, a reserved sector and the
// checksum sector.
func exfatBootRegion(l exfatLayout, partOffset uint64, serial uint32, percentInUse uint8, rootCluster uint32) []byte {
	b := make([]byte, 12*sectorSize)
	bs := b[:sectorSize]
	copy(bs[0:], []byte{0xeb, 0x76, 0x90})
	copy(bs[3:], "EXFAT   ")
	binary.LittleEndian.PutUint64(bs[64:], partOffset)
	binary.LittleEndian.PutUint64(bs[72:], l.sectors)
	binary.LittleEndian.PutUint32(bs[80:], l.fatOffset)
	binary.LittleEndian.PutUint32(bs[84:], l.fatLength)
	binary.LittleEndian.PutUint32(bs[88:], l.heapOffset)
	binary.LittleEndian.PutUint32(bs[92:], l.clusterCount)
	binary.LittleEndian.PutUint32(bs[96:], rootCluster)
	binary.LittleEndian.PutUint32(bs[100:], serial)
	binary.LittleEndian.PutUint16(bs[104:], 0x0100) // revision 1.0
	bs[108] = 9                                     // 512-byte sectors
	bs[109] = l.clusterShift
	bs[110] = 1    // one FAT
	bs[111] = 0x80 // drive select
	bs[112] = percentInUse
	bs[510], bs[511] = 0x55, 0xaa
	for i := 1; i <= 8; i++ {
		binary.LittleEndian.PutUint32(b[i*sectorSize+508:], 0xaa550000)
	}
	// VolumeFlags (106, 107) and PercentInUse (112) change while mounted and
	// are left out of the checksum.
	sum := exfatSum32(0, b[:11*sectorSize], func(i int) bool { return i == 106 || i == 107 || i == 112 })
	for i := 11 * sectorSize; i < 12*sectorSize; i += 4 {
		binary.LittleEndian.PutUint32(b[i:], sum)
	}
	return b
}

// copyFileAt streams f to w at off, skipping all-zero blocks unless dense,
// and fails unless exactly f.size bytes come.
func copyFileAt(w io.WriterAt, off int64, f exfatFile, dense bool) error {
	r, err := f.open()
	if err != nil {
		return err
	}
	defer r.Close()
	buf := make([]byte, 1<<20)
	var done int64
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if done+int64(n) > f.size {
				return fmt.Errorf("%s grew while being copied (more than %d bytes)", f.name, f.size)
			}
			if dense || !isZero(buf[:n]) {
				if _, werr := w.WriteAt(buf[:n], off+done); werr != nil {
					return werr
				}
			}
			done += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", f.name, err)
		}
	}
	if done != f.size {
		return fmt.Errorf("%s changed while being copied: %d bytes, expected %d", f.name, done, f.size)
	}
	return r.Close()
}

func isZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	return !slices.ContainsFunc(b, func(c byte) bool { return c != 0 })
}

func upcaseAll(u []uint16) []uint16 {
	out := make([]uint16, len(u))
	for i, c := range u {
		out[i] = upper16(c)
	}
	return out
}

func utf16ToBytes(u []uint16) []byte {
	var b bytes.Buffer
	for _, c := range u {
		b.WriteByte(byte(c))
		b.WriteByte(byte(c >> 8))
	}
	return b.Bytes()
}
