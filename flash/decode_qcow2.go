package flash

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"

	"bty/format"
)

// qcow2 is read natively, in two passes. parseQcow2 reads the header
// (decode_qcow2_header.go) and the active L1 and L2 tables at random offsets
// (each L2 table in one read) and keeps only the allocated clusters, runs of
// consecutive clusters merged into extents (decode_qcow2_map.go). stream then
// delivers every unallocated or zero range as Zero, sorts the extents by host
// offset and reads the source once from start to end, handing each extent's
// bytes (inflated on every core, for compressed clusters) to the sink at its
// guest offset (decode_qcow2_stream.go). Memory is the extent list plus a
// window of a few MiB.
//
// Format reference: qemu docs/interop/qcow2.txt. Snapshots are ignored (only
// the active L1 table is read); backing files, external data files and
// encryption are refused.
var qcow2Prober = prober{
	format: format.Qcow2,
	size: func(_ context.Context, head []byte, _ io.ReaderAt, _ int64) (int64, bool) {
		if len(head) < 32 {
			return -1, false
		}
		return int64(binary.BigEndian.Uint64(head[24:32])), true
	},
	open: func(src opened) (decoder, error) {
		q, err := parseQcow2(src.ra, src.size)
		if err != nil {
			return nil, err
		}
		return qcow2Decoder{q, src.in}, nil
	},
}

// qcow2Decoder streams a parsed qcow2 image from the source.
type qcow2Decoder struct {
	q  *qcow2Image
	in *input
}

// head: the guest's first bytes are not read before the writing (the tar
// check is for compressed streams; a qcow2 image holds a disk).
func (d qcow2Decoder) head() ([]byte, error) { return nil, nil }

func (d qcow2Decoder) stream(ctx context.Context, sink blockSink) error {
	return d.q.stream(ctx, bufio.NewReaderSize(d.in, 64<<10), sink)
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
	h, err := readQcow2Header(ra, srcSize)
	if err != nil {
		return nil, err
	}
	return h.mapClusters(ra, srcSize)
}
