package flash

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// qcow2Header is what the header of a qcow2 file says that reading it needs,
// checked: the features bty cannot write are refused with the command that
// converts the image, and the numbers a hostile header could use against the
// reader are held within qemu's own limits.
type qcow2Header struct {
	cbits       uint32 // cluster_bits
	clusterSize int64
	zstd        bool // compressed clusters are zstd, not deflate
	extL2       bool // extended L2 entries (subclusters)
	virtualSize int64
	l1Off       int64 // the active L1 table
	l1Entries   int64 // as many as the virtual size needs
}

// entrySize is the size of an L2 entry.
func (h qcow2Header) entrySize() int64 {
	if h.extL2 {
		return 16
	}
	return 8
}

// l2Entries is how many entries an L2 table holds, one cluster of them.
func (h qcow2Header) l2Entries() int64 { return h.clusterSize / h.entrySize() }

// span is how many guest bytes one L2 table maps.
func (h qcow2Header) span() int64 { return h.clusterSize * h.l2Entries() }

// readQcow2Header reads and checks the header, its extensions and the
// backing file name, all in the first cluster.
func readQcow2Header(ra io.ReaderAt, srcSize int64) (qcow2Header, error) {
	var q qcow2Header
	var h [qcow2V3HeaderLen + 8]byte
	n, err := readAtMost(ra, h[:], 0, "header")
	if err != nil {
		return q, err
	}
	if n < qcow2V2HeaderLen || string(h[:4]) != "QFI\xfb" {
		return q, fmt.Errorf("%w: qcow2 header truncated or missing (%d bytes)", ErrCorrupt, n)
	}
	be := binary.BigEndian
	version := be.Uint32(h[4:])
	switch {
	case version == 1:
		return q, fmt.Errorf("%w: qcow version 1 image; convert it first: qemu-img convert -O qcow2 in.qcow out.qcow2", ErrUnsupported)
	case version != 2 && version != 3:
		return q, fmt.Errorf("%w: qcow2 version %d (only 2 and 3 are known); convert it with a newer qemu-img convert -O qcow2 -o compat=1.1", ErrUnsupported, version)
	}
	cbits := be.Uint32(h[20:])
	if cbits < qcow2MinClusterBits || cbits > qcow2MaxClusterBits {
		return q, fmt.Errorf("%w: qcow2 cluster_bits %d outside %d..%d", ErrCorrupt, cbits, qcow2MinClusterBits, qcow2MaxClusterBits)
	}
	cs := int64(1) << cbits
	q.cbits, q.clusterSize = cbits, cs

	hlen := int64(qcow2V2HeaderLen)
	var incompat uint64
	if version == 3 {
		if n < qcow2V3HeaderLen {
			return q, fmt.Errorf("%w: qcow2 v3 header truncated (%d bytes)", ErrCorrupt, n)
		}
		incompat = be.Uint64(h[72:])
		hlen = int64(be.Uint32(h[100:]))
		if hlen < qcow2V3HeaderLen || hlen > cs {
			return q, fmt.Errorf("%w: qcow2 header_length %d outside %d..%d", ErrCorrupt, hlen, qcow2V3HeaderLen, cs)
		}
	}

	// The header, its extensions and the backing file name live in the first
	// cluster.
	first := cs
	if srcSize >= 0 {
		first = min(first, srcSize)
	}
	head := make([]byte, first)
	n, err = readAtMost(ra, head, 0, "header cluster")
	if err != nil {
		return q, err
	}
	head = head[:n]
	if int64(len(head)) < hlen {
		return q, fmt.Errorf("%w: qcow2 header truncated (%d of %d bytes)", ErrCorrupt, len(head), hlen)
	}
	exts, err := qcow2Extensions(head, hlen)
	if err != nil {
		return q, err
	}
	if err := qcow2Refuse(h[:], head, incompat, exts); err != nil {
		return q, err
	}
	if hlen > qcow2V3HeaderLen {
		switch ct := head[104]; {
		case ct != 0 && incompat&qcow2Compression == 0:
			return q, fmt.Errorf("%w: qcow2 compression type %d without the compression type feature bit", ErrCorrupt, ct)
		case ct == 1:
			q.zstd = true
		case ct > 1:
			return q, fmt.Errorf("%w: qcow2 compression type %d; convert it first: qemu-img convert -O qcow2 in.qcow2 out.qcow2", ErrUnsupported, ct)
		}
	}
	q.extL2 = incompat&qcow2ExtL2 != 0
	if q.extL2 && cbits < 14 {
		return q, fmt.Errorf("%w: qcow2 extended L2 entries with %d-byte clusters (16384 at least)", ErrCorrupt, cs)
	}

	vsize := be.Uint64(h[24:])
	if vsize == 0 {
		return q, fmt.Errorf("%w: qcow2 virtual size is 0", ErrCorrupt)
	}
	span := q.span()
	maxSize := uint64(span) * (qcow2MaxL1Bytes / 8)
	if vsize > maxSize {
		return q, fmt.Errorf("%w: qcow2 virtual size %d too large for %d-byte clusters (at most %d)", ErrCorrupt, vsize, cs, maxSize)
	}
	q.virtualSize = int64(vsize)
	q.l1Entries = (q.virtualSize + span - 1) / span
	l1Size := int64(be.Uint32(h[36:]))
	l1Off := be.Uint64(h[40:])
	switch {
	case l1Size < q.l1Entries:
		return q, fmt.Errorf("%w: qcow2 L1 table has %d entries, the virtual size needs %d", ErrCorrupt, l1Size, q.l1Entries)
	case l1Off == 0 || l1Off&uint64(cs-1) != 0 || l1Off > qcow2OffsetMask:
		return q, fmt.Errorf("%w: qcow2 L1 table offset %#x invalid or not cluster aligned", ErrCorrupt, l1Off)
	case srcSize >= 0 && int64(l1Off)+q.l1Entries*8 > srcSize:
		return q, fmt.Errorf("%w: qcow2 L1 table at %#x past the end of the file (%d bytes)", ErrCorrupt, l1Off, srcSize)
	}
	q.l1Off = int64(l1Off)
	return q, nil
}

// qcow2Refuse refuses what bty cannot write, with the command that makes an
// image it can: an image qemu marked corrupt or dirty, unknown incompatible
// features, encryption, a backing file, an external data file. h is the
// header, head the first cluster.
func qcow2Refuse(h, head []byte, incompat uint64, exts qcow2Exts) error {
	be := binary.BigEndian
	if incompat&qcow2Corrupt != 0 {
		return fmt.Errorf("%w: qcow2 image is marked corrupt by qemu; check it with qemu-img check -r all", ErrCorrupt)
	}
	if incompat&qcow2Dirty != 0 {
		return fmt.Errorf("%w: qcow2 image is marked dirty (not closed cleanly); repair it first: qemu-img check -r all IMAGE", ErrUnsupported)
	}
	if unknown := incompat &^ qcow2KnownIncompatible; unknown != 0 {
		return fmt.Errorf("%w: qcow2 image uses unknown incompatible features (%s); convert it with a qemu-img that knows them: qemu-img convert -O qcow2 -o compat=1.1 in.qcow2 out.qcow2", ErrUnsupported, exts.featureNames(unknown))
	}
	if crypt := be.Uint32(h[32:]); crypt != 0 {
		name := map[uint32]string{1: "AES", 2: "LUKS"}[crypt]
		if name == "" {
			name = fmt.Sprintf("method %d", crypt)
		}
		return fmt.Errorf("%w: qcow2 image is encrypted (%s); decrypt it first: qemu-img convert --object secret,id=sec0,file=KEYFILE --image-opts driver=qcow2,file.filename=in.qcow2,encrypt.key-secret=sec0 -O qcow2 out.qcow2", ErrUnsupported, name)
	}
	if bfo := be.Uint64(h[8:]); bfo != 0 {
		name := "name unreadable"
		if bfs := uint64(be.Uint32(h[16:])); bfs <= 1023 && bfo < uint64(len(head)) && bfs <= uint64(len(head))-bfo {
			name = fmt.Sprintf("%q", head[bfo:bfo+bfs])
		}
		return fmt.Errorf("%w: qcow2 image has a backing file (%s); flatten it first: qemu-img convert -O qcow2 in.qcow2 out.qcow2", ErrUnsupported, name)
	}
	if incompat&qcow2DataFile != 0 || exts.dataFile != nil {
		name := "name not recorded"
		if exts.dataFile != nil {
			name = fmt.Sprintf("%q", exts.dataFile)
		}
		return fmt.Errorf("%w: qcow2 image keeps its data in an external file (%s); convert it first: qemu-img convert -O qcow2 in.qcow2 out.qcow2", ErrUnsupported, name)
	}
	return nil
}

// qcow2Exts is what the header extensions say that matters here.
type qcow2Exts struct {
	dataFile []byte // external data file name, nil when absent
	names    []byte // feature name table: 48-byte entries
}

func qcow2Extensions(head []byte, off int64) (qcow2Exts, error) {
	var x qcow2Exts
	for {
		if off+8 > int64(len(head)) {
			return x, nil // the first cluster ends: no more room
		}
		typ := binary.BigEndian.Uint32(head[off:])
		n := int64(binary.BigEndian.Uint32(head[off+4:]))
		if typ == qcow2ExtEnd {
			return x, nil
		}
		off += 8
		if n > int64(len(head))-off {
			return x, fmt.Errorf("%w: qcow2 header extension %#x of %d bytes overruns the first cluster", ErrCorrupt, typ, n)
		}
		data := head[off : off+n]
		switch typ {
		case qcow2ExtDataFile:
			x.dataFile = data
		case qcow2ExtFeatureNames:
			x.names = data
		}
		off += (n + 7) &^ 7
	}
}

// featureNames names incompatible feature bits from the feature name table,
// falling back to "bit N".
func (x qcow2Exts) featureNames(bits uint64) string {
	var out []string
	for b := range 64 {
		if bits&(1<<b) == 0 {
			continue
		}
		name := fmt.Sprintf("bit %d", b)
		for t := x.names; len(t) >= 48; t = t[48:] {
			if t[0] == 0 && int(t[1]) == b { // type 0: incompatible
				if s := string(bytes.TrimRight(t[2:48], "\x00")); s != "" {
					name = fmt.Sprintf("%q", s)
				}
				break
			}
		}
		out = append(out, name)
	}
	return strings.Join(out, ", ")
}

// readAtMost reads up to len(p) bytes at off; a short read at the end of the
// file is not an error. Other failures are the source's.
func readAtMost(ra io.ReaderAt, p []byte, off int64, what string) (int, error) {
	n, err := ra.ReadAt(p, off)
	if n == len(p) || err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return n, nil
	}
	return n, &IOError{Side: SideSource, Err: fmt.Errorf("qcow2 %s at byte %d: %w", what, off, err)}
}

// readAtFull reads len(p) bytes at off; a file that ends first is corrupt.
func readAtFull(ra io.ReaderAt, p []byte, off int64, what string) error {
	n, err := readAtMost(ra, p, off, what)
	if err == nil && n < len(p) {
		err = fmt.Errorf("%w: qcow2 %s at byte %d: the file ends after %d of %d bytes", ErrCorrupt, what, off, n, len(p))
	}
	return err
}
