package media

import (
	"encoding/binary"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"unicode/utf16"
)

// A FAT32 file system written in one go, for the EFI system partition: the
// boot sector and its backup, FSInfo, two FATs, and the directories and files
// in consecutive clusters. A name that fits 8.3 in upper or lower case gets one
// entry (the case kept with the flags Windows NT introduced, which Linux reads
// too); others get long file name entries. Every timestamp is 1980-01-01 00:00.

// fatFile is a file to put on the file system, at a slash-separated path.
type fatFile struct {
	path string
	data []byte
}

// fatNode is a directory or file of the tree being written.
type fatNode struct {
	name     string
	dir      bool
	data     []byte
	children []*fatNode
	cluster  uint32 // first cluster; 0 for an empty file
	clusters uint32 // clusters allocated
}

func (n *fatNode) child(name string) *fatNode {
	for _, c := range n.children {
		if c.name == name {
			return c
		}
	}
	c := &fatNode{name: name, dir: true}
	n.children = append(n.children, c)
	return c
}

// fatClusterSectors picks the cluster size Microsoft's FAT32 formatter picks
// for a volume of n sectors.
func fatClusterSectors(n uint64) uint32 {
	switch {
	case n <= 532480: // 260 MiB
		return 1
	case n <= 16777216: // 8 GiB
		return 8
	case n <= 33554432: // 16 GiB
		return 16
	case n <= 67108864: // 32 GiB
		return 32
	}
	return 64
}

// fatNameEntries returns the directory entries of a name: one 8.3 entry when
// the name fits, else the long file name entries (13 UTF-16 characters each,
// last part first) followed by an 8.3 alias "NAME~N.EXT", N = n+1 (n counts
// the long names before it in the directory, so aliases are unique).
func fatNameEntries(name string, attr byte, cluster, size uint32, n int) [][32]byte {
	var e [32]byte
	if raw, flags, ok := fatShortName(name); ok {
		fatDirEntry(e[:], raw, attr, flags, cluster, size)
		return [][32]byte{e}
	}
	var alias [11]byte
	copy(alias[:], strings.Repeat(" ", 11))
	base, ext := name, ""
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		base, ext = name[:i], name[i+1:]
	}
	clean := func(s string, n int) string {
		var b strings.Builder
		for _, c := range strings.ToUpper(s) {
			if b.Len() == n {
				break
			}
			switch {
			case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
				b.WriteRune(c)
			case c == '.' || c == ' ':
			default:
				b.WriteByte('_')
			}
		}
		return b.String()
	}
	tail := fmt.Sprintf("~%d", n+1)
	copy(alias[:], clean(base, 8-len(tail))+tail)
	copy(alias[8:], clean(ext, 3))
	fatDirEntry(e[:], alias, attr, 0, cluster, size)

	var sum byte
	for _, c := range alias {
		sum = (sum>>1 | sum<<7) + c
	}
	u := utf16.Encode([]rune(name))
	u = append(u, 0) // terminated, then padded with 0xFFFF
	for len(u)%13 != 0 {
		u = append(u, 0xffff)
	}
	parts := len(u) / 13
	var out [][32]byte
	for p := parts; p >= 1; p-- {
		var l [32]byte
		l[0] = byte(p)
		if p == parts {
			l[0] |= 0x40
		}
		l[11] = 0x0f // attributes of a long name entry
		l[13] = sum
		chars := u[(p-1)*13 : p*13]
		for k, off := range []int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30} {
			binary.LittleEndian.PutUint16(l[off:], chars[k])
		}
		out = append(out, l)
	}
	return append(out, e)
}

// fatShortName renders a name as the 11 bytes of an 8.3 directory entry and
// the NT case flags. ok is false when the name needs a long file name entry.
func fatShortName(name string) (raw [11]byte, flags byte, ok bool) {
	base, ext, _ := strings.Cut(name, ".")
	if base == "" || len(base) > 8 || len(ext) > 3 || strings.Contains(ext, ".") {
		return raw, 0, false
	}
	caseOf := func(s string, lowerFlag byte) (byte, bool) {
		lower, upper := false, false
		for _, c := range s {
			switch {
			case c >= 'a' && c <= 'z':
				lower = true
			case c >= 'A' && c <= 'Z':
				upper = true
			case c >= '0' && c <= '9', strings.ContainsRune("!#$%&'()-@^_`{}~", c):
			default:
				return 0, false
			}
		}
		if lower && upper {
			return 0, false
		}
		if lower {
			return lowerFlag, true
		}
		return 0, true
	}
	fb, okb := caseOf(base, 0x08)
	fe, oke := caseOf(ext, 0x10)
	if !okb || !oke {
		return raw, 0, false
	}
	copy(raw[:], strings.Repeat(" ", 11))
	copy(raw[:8], strings.ToUpper(base))
	copy(raw[8:], strings.ToUpper(ext))
	return raw, fb | fe, true
}

const fatDate1980 = 0x0021 // 1980-01-01: day 1, month 1, year 0

func fatDirEntry(e []byte, raw [11]byte, attr, ntFlags byte, cluster, size uint32) {
	copy(e[0:11], raw[:])
	e[11] = attr
	e[12] = ntFlags
	binary.LittleEndian.PutUint16(e[16:], fatDate1980) // created
	binary.LittleEndian.PutUint16(e[18:], fatDate1980) // accessed
	binary.LittleEndian.PutUint16(e[20:], uint16(cluster>>16))
	binary.LittleEndian.PutUint16(e[24:], fatDate1980) // written
	binary.LittleEndian.PutUint16(e[26:], uint16(cluster))
	binary.LittleEndian.PutUint32(e[28:], size)
}

// writeFAT32 writes a FAT32 file system of n sectors holding files at offset
// base of w. hidden is the partition's first sector (the BPB records it),
// label at most 11 characters.
func writeFAT32(w io.WriterAt, base int64, n uint64, hidden uint32, label string, serial uint32, files []fatFile) error {
	v, err := newFAT32(w, base, n)
	if err != nil {
		return err
	}
	v.root = fatTree(files)
	if err := v.place(v.root); err != nil {
		return err
	}
	if err := v.writeDir(v.root, nil, label); err != nil {
		return err
	}
	return v.writeTables(hidden, label, serial)
}

// fat32 is the layout of one FAT32 volume being written: its geometry, the
// FAT as clusters are allocated, and where the next one starts.
type fat32 struct {
	w            io.WriterAt
	base         int64  // byte offset of the volume in w
	n            uint64 // sectors
	spc          uint32 // sectors per cluster
	clusterBytes int
	fatSectors   uint32
	dataStart    uint64 // first sector of cluster 2
	clusterCount uint32
	fat          []uint32
	next         uint32           // next free cluster
	root         *fatNode         // the root directory, which holds the label
	aliases      map[*fatNode]int // long names so far per directory, numbering the short aliases
}

const fatReserved = 32 // sectors before the first FAT

func newFAT32(w io.WriterAt, base int64, n uint64) (*fat32, error) {
	spc := fatClusterSectors(n)
	// The FAT must describe every cluster; sizing it for all sectors after the
	// reserved ones overestimates by a few sectors, which is allowed.
	fatSectors := uint32(((n-fatReserved)/uint64(spc)+2)*4+sectorSize-1) / sectorSize
	dataStart := uint64(fatReserved) + 2*uint64(fatSectors)
	if n <= dataStart {
		return nil, inputf("EFI system partition of %d sectors is too small", n)
	}
	clusterCount := uint32((n - dataStart) / uint64(spc))
	if clusterCount < 65525 {
		return nil, inputf("EFI system partition of %d sectors is too small for FAT32 (%d clusters, 65525 needed)", n, clusterCount)
	}
	v := &fat32{w: w, base: base, n: n, spc: spc, clusterBytes: int(spc) * sectorSize, fatSectors: fatSectors,
		dataStart: dataStart, clusterCount: clusterCount, fat: make([]uint32, clusterCount+2), next: 2, aliases: map[*fatNode]int{}}
	v.fat[0], v.fat[1] = 0x0ffffff8, 0x0fffffff
	return v, nil
}

// fatTree is the directory tree of files, rooted at a node of its own.
func fatTree(files []fatFile) *fatNode {
	root := &fatNode{dir: true}
	for _, f := range files {
		parts := strings.Split(strings.Trim(path.Clean("/"+f.path), "/"), "/")
		d := root
		for _, p := range parts[:len(parts)-1] {
			d = d.child(p)
		}
		leaf := d.child(parts[len(parts)-1])
		leaf.dir, leaf.data = false, f.data
	}
	return root
}

// alloc chains the clusters for bytes in the FAT: the first and how many.
func (v *fat32) alloc(bytes int) (uint32, uint32, error) {
	if bytes == 0 {
		return 0, 0, nil
	}
	k := uint32((bytes + v.clusterBytes - 1) / v.clusterBytes)
	if uint64(v.next)+uint64(k) > uint64(v.clusterCount)+2 {
		return 0, 0, inputf("EFI system partition of %d sectors is too small for its files", v.n)
	}
	first := v.next
	for c := first; c < first+k-1; c++ {
		v.fat[c] = c + 1
	}
	v.fat[first+k-1] = 0x0fffffff
	v.next += k
	return first, k, nil
}

// place sorts directory d and gives it and everything below it their
// clusters, in depth-first order.
func (v *fat32) place(d *fatNode) error {
	slices.SortFunc(d.children, func(a, b *fatNode) int { return strings.Compare(a.name, b.name) })
	entries := 2 // "." and "..", or the volume label and an end marker
	for _, c := range d.children {
		entries += len(fatNameEntries(c.name, 0, 0, 0, 0))
	}
	var err error
	if d.cluster, d.clusters, err = v.alloc(max(entries*32, 1)); err != nil {
		return err
	}
	for _, c := range d.children {
		if c.dir {
			if err := v.place(c); err != nil {
				return err
			}
		} else if c.cluster, c.clusters, err = v.alloc(len(c.data)); err != nil {
			return err
		}
	}
	return nil
}

func (v *fat32) clusterOff(c uint32) int64 {
	return v.base + int64(v.dataStart+uint64(c-2)*uint64(v.spc))*sectorSize
}

// writeDir writes directory d, whose parent is parent (nil for the root),
// and everything below it.
func (v *fat32) writeDir(d, parent *fatNode, label string) error {
	buf := make([]byte, int(d.clusters)*v.clusterBytes)
	i := 0
	if d == v.root {
		var raw [11]byte
		copy(raw[:], strings.Repeat(" ", 11))
		copy(raw[:], strings.ToUpper(label))
		fatDirEntry(buf[0:], raw, 0x08, 0, 0, 0)
		i++
	} else {
		dot := [11]byte{'.', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '}
		fatDirEntry(buf[0:], dot, 0x10, 0, d.cluster, 0)
		dot[1] = '.'
		up := parent.cluster
		if parent == v.root {
			up = 0 // ".." of a top-level directory says 0, not the root's cluster
		}
		fatDirEntry(buf[32:], dot, 0x10, 0, up, 0)
		i += 2
	}
	for _, c := range d.children {
		attr, size := byte(0x20), uint32(len(c.data))
		if c.dir {
			attr, size = 0x10, 0
		}
		es := fatNameEntries(c.name, attr, c.cluster, size, v.aliases[d])
		for _, e := range es {
			copy(buf[i*32:], e[:])
			i++
		}
		if len(es) > 1 {
			v.aliases[d]++
		}
	}
	if _, err := v.w.WriteAt(buf, v.clusterOff(d.cluster)); err != nil {
		return err
	}
	for _, c := range d.children {
		if c.dir {
			if err := v.writeDir(c, d, label); err != nil {
				return err
			}
		} else if len(c.data) > 0 {
			if _, err := v.w.WriteAt(c.data, v.clusterOff(c.cluster)); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeTables writes the boot sector (BPB), FSInfo, their backups at sectors
// 6 and 7, and the two FATs: last, once every cluster is allocated.
func (v *fat32) writeTables(hidden uint32, label string, serial uint32) error {
	bs := make([]byte, sectorSize)
	copy(bs[0:], []byte{0xeb, 0x58, 0x90})
	copy(bs[3:], "BTY     ")
	binary.LittleEndian.PutUint16(bs[11:], sectorSize)
	bs[13] = byte(v.spc)
	binary.LittleEndian.PutUint16(bs[14:], fatReserved)
	bs[16] = 2                                  // FATs
	bs[21] = 0xf8                               // media: fixed disk
	binary.LittleEndian.PutUint16(bs[24:], 63)  // sectors per track
	binary.LittleEndian.PutUint16(bs[26:], 255) // heads
	binary.LittleEndian.PutUint32(bs[28:], hidden)
	binary.LittleEndian.PutUint32(bs[32:], uint32(v.n))
	binary.LittleEndian.PutUint32(bs[36:], v.fatSectors)
	binary.LittleEndian.PutUint32(bs[44:], v.root.cluster)
	binary.LittleEndian.PutUint16(bs[48:], 1) // FSInfo sector
	binary.LittleEndian.PutUint16(bs[50:], 6) // backup boot sector
	bs[64] = 0x80                             // drive number
	bs[66] = 0x29                             // extended boot signature
	binary.LittleEndian.PutUint32(bs[67:], serial)
	copy(bs[71:82], []byte(strings.ToUpper(label)+strings.Repeat(" ", 11)))
	copy(bs[82:], "FAT32   ")
	bs[510], bs[511] = 0x55, 0xaa

	fsinfo := make([]byte, sectorSize)
	binary.LittleEndian.PutUint32(fsinfo[0:], 0x41615252)
	binary.LittleEndian.PutUint32(fsinfo[484:], 0x61417272)
	binary.LittleEndian.PutUint32(fsinfo[488:], v.clusterCount+2-v.next) // free clusters
	binary.LittleEndian.PutUint32(fsinfo[492:], v.next)                  // next free
	binary.LittleEndian.PutUint32(fsinfo[508:], 0xaa550000)

	for _, s := range []struct {
		sector int64
		data   []byte
	}{{0, bs}, {1, fsinfo}, {6, bs}, {7, fsinfo}} {
		if _, err := v.w.WriteAt(s.data, v.base+s.sector*sectorSize); err != nil {
			return err
		}
	}
	fatBytes := make([]byte, int(v.fatSectors)*sectorSize)
	for i, c := range v.fat {
		binary.LittleEndian.PutUint32(fatBytes[4*i:], c)
	}
	for i := range 2 {
		if _, err := v.w.WriteAt(fatBytes, v.base+int64(fatReserved+uint32(i)*v.fatSectors)*sectorSize); err != nil {
			return err
		}
	}
	return nil
}
