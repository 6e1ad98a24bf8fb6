package flash

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"runtime"
	"slices"
	"strings"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zstd"
)

// qcow2 is read natively, in two passes. parseQcow2 reads the header and the
// active L1 and L2 tables at random offsets (each L2 table in one read) and keeps
// only the allocated clusters, runs of consecutive clusters merged into extents.
// stream then delivers every unallocated or zero range as Zero, sorts the extents
// by host offset and reads the source once from start to end, handing each
// extent's bytes (inflated, for compressed clusters) to the sink at its guest
// offset. Memory is the extent list plus a window of a few MiB.
//
// Format reference: qemu docs/interop/qcow2.txt. Snapshots are ignored (only
// the active L1 table is read); backing files, external data files and
// encryption are refused.
var qcow2Prober = prober{
	format:   Qcow2,
	match:    func(h []byte) bool { return hasPrefix(h, "QFI\xfb") },
	suffixes: []string{".qcow2", ".qcow"},
	size: func(_ context.Context, head []byte, _ io.ReaderAt, _ int64) (int64, bool) {
		if len(head) < 32 {
			return -1, false
		}
		return int64(binary.BigEndian.Uint64(head[24:32])), true
	},
}

const (
	qcow2MinClusterBits = 9  // 512 bytes
	qcow2MaxClusterBits = 21 // 2 MiB
	// qcow2MaxL1Bytes is qemu's own limit on the active L1 table
	// (QCOW_MAX_L1_SIZE): no image qemu opens needs more, and it bounds what a
	// hostile header can make us read.
	qcow2MaxL1Bytes = 32 << 20
	// qcow2MaxExtents bounds the extent list (24 bytes each, 384 MiB at the
	// limit). A fully allocated 1 TiB image with 64 KiB clusters stored in
	// random host order reaches it; a hostile image that maps one host cluster
	// at every guest cluster stops here instead of eating the machine.
	qcow2MaxExtents = 1 << 24
	// qcow2MaxRun is the longest merged extent, so that its length fits a uint32.
	qcow2MaxRun = 1 << 30
	// qcow2Chunk is how much of the source one step of stream reads, and so the
	// largest piece handed to the sink.
	qcow2Chunk = 1 << 20

	qcow2V2HeaderLen = 72
	qcow2V3HeaderLen = 104

	// Incompatible feature bits.
	qcow2Dirty             = 1 << 0
	qcow2Corrupt           = 1 << 1
	qcow2DataFile          = 1 << 2
	qcow2Compression       = 1 << 3
	qcow2ExtL2             = 1 << 4
	qcow2KnownIncompatible = qcow2Dirty | qcow2Corrupt | qcow2DataFile | qcow2Compression | qcow2ExtL2

	// Header extension types.
	qcow2ExtEnd          = 0
	qcow2ExtFeatureNames = 0x6803f857
	qcow2ExtDataFile     = 0x44415441

	// L1 and L2 entry fields.
	qcow2OffsetMask = 0x00fffffffffffe00 // bits 9-55: host offset
	qcow2Compressed = 1 << 62
	qcow2ZeroFlag   = 1 << 0 // v3, standard L2 entries only

	// Subclusters per cluster with extended L2 entries.
	qcow2Subclusters = 32
)

// qcow2Extent is an allocated guest range and where its bytes are in the file.
// A standard extent is n bytes at host, possibly many clusters merged; a
// compressed one is one cluster whose compressed bytes are csize bytes at host.
type qcow2Extent struct {
	guest, host int64
	n           uint32 // guest bytes
	csize       uint32 // compressed bytes at host; 0 for a standard extent
}

func (e qcow2Extent) hostEnd() int64 {
	if e.csize != 0 {
		return e.host + int64(e.csize)
	}
	return e.host + int64(e.n)
}

// qcow2Image is the parsed layout of a qcow2 file.
type qcow2Image struct {
	VirtualSize int64

	clusterSize int64
	zstd        bool          // compressed clusters are zstd, not deflate
	ext         []qcow2Extent // allocated ranges, sorted by guest offset
	maxCsize    int64         // largest compressed extent, 0 when none
	hostEnd     int64         // one past the last source byte an extent needs
}

// parseQcow2 reads the header and the L1/L2 tables through ra. srcSize is the
// source length, -1 when unknown.
func parseQcow2(ra io.ReaderAt, srcSize int64) (*qcow2Image, error) {
	var h [qcow2V3HeaderLen + 8]byte
	n, err := readAtMost(ra, h[:], 0, "header")
	if err != nil {
		return nil, err
	}
	if n < qcow2V2HeaderLen || string(h[:4]) != "QFI\xfb" {
		return nil, fmt.Errorf("%w: qcow2 header truncated or missing (%d bytes)", ErrCorrupt, n)
	}
	be := binary.BigEndian
	version := be.Uint32(h[4:])
	switch {
	case version == 1:
		return nil, fmt.Errorf("%w: qcow version 1 image; convert it first: qemu-img convert -O qcow2 in.qcow out.qcow2", ErrUnsupported)
	case version != 2 && version != 3:
		return nil, fmt.Errorf("%w: qcow2 version %d (only 2 and 3 are known); convert it with a newer qemu-img convert -O qcow2 -o compat=1.1", ErrUnsupported, version)
	}
	cbits := be.Uint32(h[20:])
	if cbits < qcow2MinClusterBits || cbits > qcow2MaxClusterBits {
		return nil, fmt.Errorf("%w: qcow2 cluster_bits %d outside %d..%d", ErrCorrupt, cbits, qcow2MinClusterBits, qcow2MaxClusterBits)
	}
	cs := int64(1) << cbits
	q := &qcow2Image{clusterSize: cs}

	hlen := int64(qcow2V2HeaderLen)
	var incompat uint64
	if version == 3 {
		if n < qcow2V3HeaderLen {
			return nil, fmt.Errorf("%w: qcow2 v3 header truncated (%d bytes)", ErrCorrupt, n)
		}
		incompat = be.Uint64(h[72:])
		hlen = int64(be.Uint32(h[100:]))
		if hlen < qcow2V3HeaderLen || hlen > cs {
			return nil, fmt.Errorf("%w: qcow2 header_length %d outside %d..%d", ErrCorrupt, hlen, qcow2V3HeaderLen, cs)
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
		return nil, err
	}
	head = head[:n]
	if int64(len(head)) < hlen {
		return nil, fmt.Errorf("%w: qcow2 header truncated (%d of %d bytes)", ErrCorrupt, len(head), hlen)
	}
	exts, err := qcow2Extensions(head, hlen)
	if err != nil {
		return nil, err
	}

	if incompat&qcow2Corrupt != 0 {
		return nil, fmt.Errorf("%w: qcow2 image is marked corrupt by qemu; check it with qemu-img check -r all", ErrCorrupt)
	}
	if incompat&qcow2Dirty != 0 {
		return nil, fmt.Errorf("%w: qcow2 image is marked dirty (not closed cleanly); repair it first: qemu-img check -r all IMAGE", ErrUnsupported)
	}
	if unknown := incompat &^ qcow2KnownIncompatible; unknown != 0 {
		return nil, fmt.Errorf("%w: qcow2 image uses unknown incompatible features (%s); convert it with a qemu-img that knows them: qemu-img convert -O qcow2 -o compat=1.1 in.qcow2 out.qcow2", ErrUnsupported, exts.featureNames(unknown))
	}
	if crypt := be.Uint32(h[32:]); crypt != 0 {
		name := map[uint32]string{1: "AES", 2: "LUKS"}[crypt]
		if name == "" {
			name = fmt.Sprintf("method %d", crypt)
		}
		return nil, fmt.Errorf("%w: qcow2 image is encrypted (%s); decrypt it first: qemu-img convert --object secret,id=sec0,file=KEYFILE --image-opts driver=qcow2,file.filename=in.qcow2,encrypt.key-secret=sec0 -O qcow2 out.qcow2", ErrUnsupported, name)
	}
	if bfo := be.Uint64(h[8:]); bfo != 0 {
		name := "name unreadable"
		if bfs := uint64(be.Uint32(h[16:])); bfs <= 1023 && bfo < uint64(len(head)) && bfs <= uint64(len(head))-bfo {
			name = fmt.Sprintf("%q", head[bfo:bfo+bfs])
		}
		return nil, fmt.Errorf("%w: qcow2 image has a backing file (%s); flatten it first: qemu-img convert -O qcow2 in.qcow2 out.qcow2", ErrUnsupported, name)
	}
	if incompat&qcow2DataFile != 0 || exts.dataFile != nil {
		name := "name not recorded"
		if exts.dataFile != nil {
			name = fmt.Sprintf("%q", exts.dataFile)
		}
		return nil, fmt.Errorf("%w: qcow2 image keeps its data in an external file (%s); convert it first: qemu-img convert -O qcow2 in.qcow2 out.qcow2", ErrUnsupported, name)
	}
	if hlen > qcow2V3HeaderLen {
		switch ct := head[104]; {
		case ct != 0 && incompat&qcow2Compression == 0:
			return nil, fmt.Errorf("%w: qcow2 compression type %d without the compression type feature bit", ErrCorrupt, ct)
		case ct == 1:
			q.zstd = true
		case ct > 1:
			return nil, fmt.Errorf("%w: qcow2 compression type %d; convert it first: qemu-img convert -O qcow2 in.qcow2 out.qcow2", ErrUnsupported, ct)
		}
	}
	extL2 := incompat&qcow2ExtL2 != 0
	if extL2 && cbits < 14 {
		return nil, fmt.Errorf("%w: qcow2 extended L2 entries with %d-byte clusters (16384 at least)", ErrCorrupt, cs)
	}

	vsize := be.Uint64(h[24:])
	if vsize == 0 {
		return nil, fmt.Errorf("%w: qcow2 virtual size is 0", ErrCorrupt)
	}
	entrySize := int64(8)
	if extL2 {
		entrySize = 16
	}
	l2Entries := cs / entrySize
	span := cs * l2Entries // guest bytes one L2 table maps
	maxSize := uint64(span) * (qcow2MaxL1Bytes / 8)
	if vsize > maxSize {
		return nil, fmt.Errorf("%w: qcow2 virtual size %d too large for %d-byte clusters (at most %d)", ErrCorrupt, vsize, cs, maxSize)
	}
	q.VirtualSize = int64(vsize)
	l1Need := (q.VirtualSize + span - 1) / span
	l1Size := int64(be.Uint32(h[36:]))
	l1Off := be.Uint64(h[40:])
	switch {
	case l1Size < l1Need:
		return nil, fmt.Errorf("%w: qcow2 L1 table has %d entries, the virtual size needs %d", ErrCorrupt, l1Size, l1Need)
	case l1Off == 0 || l1Off&uint64(cs-1) != 0 || l1Off > qcow2OffsetMask:
		return nil, fmt.Errorf("%w: qcow2 L1 table offset %#x invalid or not cluster aligned", ErrCorrupt, l1Off)
	case srcSize >= 0 && int64(l1Off)+l1Need*8 > srcSize:
		return nil, fmt.Errorf("%w: qcow2 L1 table at %#x past the end of the file (%d bytes)", ErrCorrupt, l1Off, srcSize)
	}
	l1 := make([]byte, l1Need*8)
	if err := readAtFull(ra, l1, int64(l1Off), "L1 table"); err != nil {
		return nil, err
	}
	if err := qcow2DistinctL2(l1, cs, srcSize); err != nil {
		return nil, err
	}

	l2 := make([]byte, min(cs, (q.VirtualSize+cs-1)/cs*entrySize))
	sub := cs / qcow2Subclusters
	csizeShift := 62 - (cbits - 8)
	for i := range l1Need {
		l2Off := int64(be.Uint64(l1[i*8:]) & qcow2OffsetMask)
		if l2Off == 0 {
			continue
		}
		base := i * span
		entries := min(l2Entries, (q.VirtualSize-base+cs-1)/cs)
		tab := l2[:entries*entrySize]
		if err := readAtFull(ra, tab, l2Off, "L2 table"); err != nil {
			return nil, err
		}
		for j := range entries {
			e := be.Uint64(tab[j*entrySize:])
			guest := base + j*cs
			n := min(cs, q.VirtualSize-guest)
			if e&qcow2Compressed != 0 {
				coff := int64(e & (1<<csizeShift - 1))
				sectors := int64((e>>csizeShift)&(1<<(cbits-8)-1)) + 1
				csize := sectors*512 - coff&511
				switch {
				case coff == 0 || coff > qcow2OffsetMask:
					return nil, fmt.Errorf("%w: qcow2 compressed cluster at guest %#x has invalid offset %#x", ErrCorrupt, guest, coff)
				case srcSize >= 0 && coff >= srcSize:
					return nil, fmt.Errorf("%w: qcow2 compressed cluster at guest %#x starts at %#x, past the end of the file (%d bytes)", ErrCorrupt, guest, coff, srcSize)
				case srcSize >= 0:
					// The sector count rounds up: the last cluster's range may
					// end past the file, whose missing bytes are never needed.
					csize = min(csize, srcSize-coff)
				}
				if err := q.add(qcow2Extent{guest: guest, host: coff, n: uint32(n), csize: uint32(csize)}); err != nil {
					return nil, err
				}
				q.maxCsize = max(q.maxCsize, csize)
				continue
			}
			host := int64(e & qcow2OffsetMask)
			if host&(cs-1) != 0 && (extL2 || e&qcow2ZeroFlag == 0) {
				return nil, fmt.Errorf("%w: qcow2 data cluster for guest %#x at unaligned offset %#x", ErrCorrupt, guest, host)
			}
			if !extL2 {
				if e&qcow2ZeroFlag != 0 || host == 0 {
					continue // reads as zeros
				}
				if err := q.addStandard(guest, host, n, srcSize); err != nil {
					return nil, err
				}
				continue
			}
			bitmap := be.Uint64(tab[j*entrySize+8:])
			alloc, zero := uint32(bitmap), uint32(bitmap>>32)
			switch {
			case alloc&zero != 0:
				return nil, fmt.Errorf("%w: qcow2 L2 entry for guest %#x marks subclusters both allocated and zero", ErrCorrupt, guest)
			case alloc != 0 && host == 0:
				return nil, fmt.Errorf("%w: qcow2 L2 entry for guest %#x has allocated subclusters but no cluster", ErrCorrupt, guest)
			}
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
						return nil, err
					}
				}
				k += run
			}
		}
	}
	return q, nil
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

// stream reads the source sequentially from offset 0 through r and delivers the
// guest image to sink: Zero for every range no extent covers, then Data for
// the extents in the order of their host offsets. It reads r no further than
// the last byte an extent needs.
func (q *qcow2Image) stream(r io.Reader, sink imageSink) error {
	slices.SortFunc(q.ext, func(a, b qcow2Extent) int { return cmp.Compare(a.guest, b.guest) })
	at := int64(0)
	for _, e := range q.ext {
		if e.guest > at {
			if err := sink.Zero(at, e.guest-at); err != nil {
				return err
			}
		}
		at = e.guest + int64(e.n)
	}
	if at < q.VirtualSize {
		if err := sink.Zero(at, q.VirtualSize-at); err != nil {
			return err
		}
	}
	if len(q.ext) == 0 {
		return nil
	}
	slices.SortFunc(q.ext, func(a, b qcow2Extent) int {
		return cmp.Or(cmp.Compare(a.host, b.host), cmp.Compare(a.guest, b.guest))
	})
	s := qcow2Stream{q: q, r: r, sink: sink, buf: make([]byte, min(qcow2Chunk, q.hostEnd)+q.maxCsize)}
	if q.maxCsize > 0 {
		// Decoding compressed clusters is most of the work: spread it over the
		// CPUs, within a memory budget of about 16 MiB for the jobs' buffers.
		n := min(2*runtime.GOMAXPROCS(0), max(2, int((16<<20)/(q.maxCsize+q.clusterSize))))
		s.free = make([]*qcow2Job, n)
		for i := range s.free {
			s.free[i] = &qcow2Job{}
		}
	}
	err := s.run()
	s.stop()
	return err
}

// qcow2Stream is one pass of stream over the source. The window buf[:len(win)]
// holds source bytes [ws, pos); each step slides it, reads up to qcow2Chunk more,
// and serves the active extents, those whose host range has started. A
// standard extent takes its bytes as they arrive; a compressed one waits until
// its whole range is in the window, which therefore keeps up to maxCsize bytes
// from before the step, and then goes to a decoding job. Jobs run concurrently
// and are delivered to the sink in the order they started, from this goroutine.
type qcow2Stream struct {
	q        *qcow2Image
	r        io.Reader
	sink     imageSink
	buf, win []byte
	ws, pos  int64
	eof      bool
	next     int // first extent not yet active
	active   []qcow2Active
	free     []*qcow2Job // idle jobs
	running  []*qcow2Job // started jobs, oldest first
}

type qcow2Active struct {
	e    qcow2Extent
	done int64 // host offset up to which a standard extent was delivered
}

// qcow2Job decodes one compressed cluster on its own goroutine.
type qcow2Job struct {
	e    qcow2Extent
	in   []byte // the compressed bytes, copied out of the window
	out  []byte
	err  error
	done chan struct{}
	dec  qcow2Decoder
}

func (s *qcow2Stream) run() error {
	ext := s.q.ext
	for {
		for s.next < len(ext) && ext[s.next].host < s.pos {
			e := ext[s.next]
			s.active = append(s.active, qcow2Active{e: e, done: e.host})
			s.next++
		}
		if err := s.serve(); err != nil {
			return err
		}
		if len(s.active) == 0 && s.next == len(ext) {
			for len(s.running) > 0 {
				if err := s.deliver(); err != nil {
					return err
				}
			}
			return nil
		}
		if s.eof {
			at := ext[min(s.next, len(ext)-1)].host
			if len(s.active) > 0 {
				at = s.active[0].done
			}
			return fmt.Errorf("%w: qcow2 file ends at byte %d, before the cluster data at %#x", ErrCorrupt, s.pos, at)
		}
		if err := s.advance(); err != nil {
			return err
		}
	}
}

// serve hands the active extents what the window holds for them and retires
// those that are complete.
func (s *qcow2Stream) serve() error {
	kept := s.active[:0]
	for _, a := range s.active {
		e := a.e
		if e.csize == 0 {
			end := min(e.hostEnd(), s.pos)
			if end > a.done {
				p := s.win[a.done-s.ws : end-s.ws]
				if err := s.sink.Data(e.guest+(a.done-e.host), p); err != nil {
					return err
				}
				a.done = end
			}
			if a.done < e.hostEnd() {
				kept = append(kept, a)
			}
			continue
		}
		end := min(e.hostEnd(), s.pos)
		if end < e.hostEnd() && !s.eof {
			kept = append(kept, a)
			continue
		}
		if err := s.start(e, s.win[e.host-s.ws:end-s.ws]); err != nil {
			return err
		}
	}
	clear(s.active[len(kept):])
	s.active = kept
	return nil
}

// start decodes the compressed cluster e from src on a job of its own,
// first delivering the oldest job when all are busy.
func (s *qcow2Stream) start(e qcow2Extent, src []byte) error {
	if len(s.free) == 0 {
		if err := s.deliver(); err != nil {
			return err
		}
	}
	j := s.free[len(s.free)-1]
	s.free = s.free[:len(s.free)-1]
	j.e, j.in, j.done = e, append(j.in[:0], src...), make(chan struct{})
	s.running = append(s.running, j)
	go func() {
		defer close(j.done)
		j.out, j.err = j.dec.cluster(j.in, s.q)
	}()
	return nil
}

// deliver waits for the oldest job and hands its cluster to the sink.
func (s *qcow2Stream) deliver() error {
	j := s.running[0]
	<-j.done
	s.running = s.running[1:]
	s.free = append(s.free, j)
	if j.err != nil {
		return fmt.Errorf("qcow2 compressed cluster at %#x for guest %#x: %w", j.e.host, j.e.guest, j.err)
	}
	for off := int64(0); off < int64(j.e.n); off += qcow2Chunk {
		if err := s.sink.Data(j.e.guest+off, j.out[off:min(off+qcow2Chunk, int64(j.e.n))]); err != nil {
			return err
		}
	}
	return nil
}

// stop waits for the jobs still running (after an error) and releases the
// decoders.
func (s *qcow2Stream) stop() {
	for _, j := range s.running {
		<-j.done
	}
	s.free = append(s.free, s.running...)
	s.running = nil
	for _, j := range s.free {
		if j.dec.zstd != nil {
			j.dec.zstd.Close()
		}
	}
}

// advance slides the window past what no active extent needs any more, skips
// to the next extent when none is active, and reads the next chunk.
func (s *qcow2Stream) advance() error {
	keep := s.pos
	for _, a := range s.active {
		if a.e.csize != 0 {
			keep = min(keep, a.e.host)
		}
	}
	n := copy(s.buf, s.win[keep-s.ws:])
	s.win, s.ws = s.buf[:n], keep
	if len(s.active) == 0 {
		for to := s.q.ext[s.next].host; s.pos < to; {
			m, err := io.ReadFull(s.r, s.buf[:min(int64(len(s.buf)), to-s.pos)])
			s.pos += int64(m)
			if err != nil {
				return s.readErr(err)
			}
		}
		s.win, s.ws = s.buf[:0], s.pos
	}
	want := min(qcow2Chunk, s.q.hostEnd-s.pos)
	m, err := io.ReadFull(s.r, s.buf[len(s.win):int64(len(s.win))+want])
	s.win = s.buf[:len(s.win)+m]
	s.pos += int64(m)
	if err != nil {
		return s.readErr(err)
	}
	return nil
}

// readErr notes the end of the file, which run reports if a byte is missing,
// and passes other failures on.
func (s *qcow2Stream) readErr(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		s.eof = true
		return nil
	}
	return fmt.Errorf("qcow2 read at byte %d: %w", s.pos, err)
}

// qcow2Decoder inflates compressed clusters, reusing its decompressor and
// output buffer.
type qcow2Decoder struct {
	src   bytes.Reader
	flate io.ReadCloser
	zstd  *zstd.Decoder
	out   []byte
}

// cluster decodes one cluster from src, which may run past the compressed
// data (the sector count rounds up): decoding stops once the cluster is full.
func (d *qcow2Decoder) cluster(src []byte, q *qcow2Image) ([]byte, error) {
	d.src.Reset(src)
	if d.out == nil {
		d.out = make([]byte, q.clusterSize)
	}
	var r io.Reader
	if q.zstd {
		if d.zstd == nil {
			// Synchronous (concurrency 1): it stops at the end of the frame
			// instead of racing ahead into the padding after it.
			z, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
				zstd.WithDecoderMaxWindow(uint64(max(2*q.clusterSize, 1<<20))))
			if err != nil {
				return nil, err
			}
			d.zstd = z
		}
		if err := d.zstd.Reset(&d.src); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		r = d.zstd
	} else {
		if d.flate == nil {
			d.flate = flate.NewReader(&d.src)
		} else if err := d.flate.(flate.Resetter).Reset(&d.src, nil); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		r = d.flate
	}
	n, err := io.ReadFull(r, d.out)
	if err != nil {
		return nil, fmt.Errorf("%w: inflates to %d of %d bytes: %w", ErrCorrupt, n, len(d.out), err)
	}
	return d.out, nil
}
