// Package demo makes the images of bty demo: one small GPT disk, the same bytes
// every time, in every format bty reads (raw, gzip, xz, zstd, bzip2, qcow2),
// each with a .sha256 sidecar. They are generated in memory when the demo
// starts (well under a second) instead of being committed as binaries.
package demo

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/dsnet/compress/bzip2"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"golang.org/x/sync/errgroup"

	"bty/gpt"
)

// DiskSize is the size of the demo disk image.
const DiskSize = 8 << 20

const (
	sector    = 512
	sectors   = DiskSize / sector
	partFirst = 2048 // LBA of the partition: 1 MiB, as partitioning tools align
	partLast  = sectors - 34
	textSize  = 128 << 10 // bytes of text in each of three stretches
)

// Disk returns the raw demo image: a protective MBR, a GPT with one Linux
// partition named "bty-demo" holding three stretches of text, and the backup
// GPT at the end.
func Disk() []byte {
	d := make([]byte, DiskSize)
	head, tail := gpt.Layout(sector, sectors, gpt.MustParseGUID("B7D1E5A0-0D3C-4C55-9A3E-62C0BDE30000"), []gpt.Partition{{
		Type:  gpt.MustParseGUID("0FC63DAF-8483-4772-8E79-3D69D8477DE4"), // Linux filesystem data
		ID:    gpt.MustParseGUID("B7D1E5A0-0D3C-4C55-9A3E-62C0BDE30001"),
		First: partFirst,
		Last:  partLast,
		Name:  "bty-demo",
	}})
	copy(d, head)
	copy(d[DiskSize-len(tail):], tail)

	// Text in every other MiB of the partition, so the image has data to
	// write, zero stretches to skip, and something to look at:
	// hexdump -C -s 1M scratch.img | head
	var t bytes.Buffer
	t.WriteString("bty demo image: this partition holds text in every other MiB, zeros between.\n")
	for i := 0; t.Len() < 3*textSize; i++ {
		fmt.Fprintf(&t, "line %06d: bty writes the data, zeroes the holes, and makes the disk bootable last.\n", i)
	}
	for i := range 3 {
		copy(d[partFirst*sector+i*(2<<20):], t.Bytes()[i*textSize:(i+1)*textSize])
	}
	return d
}

// Image is one file of the demo image set.
type Image struct {
	Name string
	Data []byte
}

// Images returns the demo disk in every format, raw first.
func Images() ([]Image, error) {
	raw := Disk()
	encs := []struct {
		name string
		enc  func([]byte) ([]byte, error)
	}{
		{"demo-disk.img.gz", gzipped},
		{"demo-disk.img.xz", xzed},
		{"demo-disk.img.zst", zstded},
		{"demo-disk.img.bz2", bzipped},
		{"demo-disk.qcow2", qcow2},
	}
	out := make([]Image, 1+len(encs))
	out[0] = Image{"demo-disk.img", raw}
	var g errgroup.Group
	for i, c := range encs {
		g.Go(func() error {
			b, err := c.enc(raw)
			if err != nil {
				return fmt.Errorf("demo image %s: %w", c.name, err)
			}
			out[1+i] = Image{c.name, b}
			return nil
		})
	}
	return out, g.Wait()
}

// Write puts the demo images and their .sha256 sidecars in dir, which is
// created if needed.
func Write(dir string) ([]Image, error) {
	imgs, err := Images()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	for _, img := range imgs {
		p := filepath.Join(dir, img.Name)
		if err := os.WriteFile(p, img.Data, 0o644); err != nil {
			return nil, err
		}
		sum := sha256.Sum256(img.Data)
		side := hex.EncodeToString(sum[:]) + "  " + img.Name + "\n"
		if err := os.WriteFile(p+".sha256", []byte(side), 0o644); err != nil {
			return nil, err
		}
	}
	return imgs, nil
}

// compressed runs b through the compressing writer that open makes.
func compressed[W io.WriteCloser](b []byte, open func(io.Writer) (W, error)) ([]byte, error) {
	var out bytes.Buffer
	w, err := open(&out)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	err = w.Close()
	return out.Bytes(), err
}

func gzipped(b []byte) ([]byte, error) {
	return compressed(b, func(w io.Writer) (*gzip.Writer, error) { return gzip.NewWriterLevel(w, gzip.BestCompression) })
}

func xzed(b []byte) ([]byte, error) { return compressed(b, xz.NewWriter) }

func zstded(b []byte) ([]byte, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	if err != nil {
		return nil, err
	}
	defer enc.Close()
	return enc.EncodeAll(b, nil), nil
}

func bzipped(b []byte) ([]byte, error) {
	return compressed(b, func(w io.Writer) (*bzip2.Writer, error) {
		return bzip2.NewWriter(w, &bzip2.WriterConfig{Level: 9})
	})
}

// qcow2 writes a version 2 qcow2 image of b with 64 KiB clusters: the
// header, a refcount table and block, one L1 and one L2 table, and a data
// cluster for each cluster of b that is not all zeros (the others read as
// zeros). qemu-img check finds it clean.
func qcow2(b []byte) ([]byte, error) {
	const (
		bits    = 16
		cluster = 1 << bits
	)
	if len(b)%cluster != 0 || len(b)/cluster > cluster/8 {
		return nil, fmt.Errorf("qcow2: %d bytes is not a whole number of clusters that one L2 table maps", len(b))
	}
	const (
		refTable = 1 * cluster
		refBlock = 2 * cluster
		l1       = 3 * cluster
		l2       = 4 * cluster
		data     = 5 * cluster
	)
	be := binary.BigEndian
	var used [][]byte // data clusters in order
	l2t := make([]byte, cluster)
	zero := make([]byte, cluster)
	for i := 0; i < len(b)/cluster; i++ {
		c := b[i*cluster : (i+1)*cluster]
		if bytes.Equal(c, zero) {
			continue
		}
		be.PutUint64(l2t[i*8:], uint64(data+len(used)*cluster)|1<<63)
		used = append(used, c)
	}
	total := 5 + len(used)
	if total > cluster/2 {
		return nil, fmt.Errorf("qcow2: %d clusters need more than one refcount block", total)
	}
	out := make([]byte, data, data+len(used)*cluster)
	h := out[:72]
	copy(h, "QFI\xfb")
	be.PutUint32(h[4:], 2)
	be.PutUint32(h[20:], bits)
	be.PutUint64(h[24:], uint64(len(b)))
	be.PutUint32(h[36:], 1) // L1 entries
	be.PutUint64(h[40:], l1)
	be.PutUint64(h[48:], refTable)
	be.PutUint32(h[56:], 1) // refcount table clusters
	be.PutUint64(out[refTable:], refBlock)
	for i := 0; i < total; i++ {
		be.PutUint16(out[refBlock+2*i:], 1)
	}
	be.PutUint64(out[l1:], l2|1<<63)
	copy(out[l2:], l2t)
	for _, c := range used {
		out = append(out, c...)
	}
	return out, nil
}
