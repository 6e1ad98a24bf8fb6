package flash

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"testing"

	"github.com/dsnet/compress/bzip2"
	"github.com/ulikunitz/xz"

	"bty/gpt"
)

// Fuzz targets for the parsers of untrusted bytes that are not fuzzed
// elsewhere (qcow2: FuzzQcow2; LZMA2: flash/lzma2): the xz index and container
// reader, the bzip2 block scanner, the GPT relocation. The seeds below run
// with every go test; go test -fuzz=FuzzX runs one for longer.

// fuzzMaxOut bounds what a fuzz input may decode to: a few bytes of bzip2 or
// LZMA2 can stand for many MiB, and the fuzzer must not take them for a hang.
const fuzzMaxOut = 4 << 20

// growSink is a sink for images of unknown size, up to fuzzMaxOut bytes, that
// checks that no byte is delivered twice.
type growSink struct {
	mu   sync.Mutex
	img  []byte
	seen [][2]int64 // the ranges delivered
}

func (s *growSink) add(off int64, p []byte, n int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if off < 0 || n < 0 || off+n > fuzzMaxOut {
		return fmt.Errorf("range [%d,+%d) outside [0,%d)", off, n, fuzzMaxOut)
	}
	for _, r := range s.seen {
		if off < r[1] && r[0] < off+n {
			return fmt.Errorf("range [%d,+%d) delivered twice", off, n)
		}
	}
	s.seen = append(s.seen, [2]int64{off, off + n})
	if end := int(off + n); end > len(s.img) {
		s.img = append(s.img, make([]byte, end-len(s.img))...)
	}
	copy(s.img[off:], p)
	return nil
}

func (s *growSink) Data(off int64, p []byte) error { return s.add(off, p, int64(len(p))) }
func (s *growSink) Take(off int64, p []byte, release func()) error {
	defer release()
	return s.Data(off, p)
}
func (s *growSink) Zero(off, n int64) error             { return s.add(off, nil, n) }
func (s *growSink) ReadFrom(r io.Reader) (int64, error) { return readInto(s, r) }

// readMax reads r to its end, or to fuzzMaxOut bytes; full reports the
// latter.
func readMax(r io.Reader) (b []byte, full bool, err error) {
	b, err = io.ReadAll(io.LimitReader(r, fuzzMaxOut+1))
	return b, len(b) > fuzzMaxOut, err
}

// xzSeeds are xz files of one and several blocks and streams, with padding.
func xzSeeds(f *testing.F) [][]byte {
	enc := func(data []byte, blockSize int64) []byte {
		var b bytes.Buffer
		w, err := xz.WriterConfig{BlockSize: blockSize}.NewWriter(&b)
		if err != nil {
			f.Fatal(err)
		}
		w.Write(data)
		w.Close()
		return b.Bytes()
	}
	text := bytes.Repeat([]byte("bty writes images; "), 2000)
	one, many := enc(text, 1<<20), enc(text, 4096)
	return [][]byte{
		one, many,
		enc(nil, 4096),
		append(append(append([]byte{}, many...), 0, 0, 0, 0), one...),
		one[:len(one)-5],
	}
}

// FuzzXzIndex: the index of any source either is refused or lists blocks in
// order inside the source; where it is taken, the blocks decoded in parallel
// are the image the sequential reader decodes, and each path decodes what the
// other does.
func FuzzXzIndex(f *testing.F) {
	for _, s := range xzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		blocks, ok := xzIndex(bytes.NewReader(src), int64(len(src)))
		if !ok {
			return
		}
		var out, end int64
		for i, b := range blocks {
			if b.out != out || b.size < 0 || b.comp < end+12 && i == 0 || b.comp < end || b.comp+b.padded() > int64(len(src)) {
				t.Fatalf("block %d of %d: %+v (after byte %d, image offset %d): outside the source or out of order", i, len(blocks), b, end, out)
			}
			end, out = b.comp+b.padded(), out+b.size
		}
		if out > fuzzMaxOut {
			return
		}
		r, err := newXzReader(bytes.NewReader(src))
		if err != nil {
			t.Fatalf("newXzReader = %v", err)
		}
		seq, full, serr := readMax(r)
		if full {
			serr = fmt.Errorf("the sequential reader decodes more than the index's %d bytes", out)
		}
		sink := &growSink{}
		perr := xzParallel(context.Background(), bytes.NewReader(src), blocks, sink)
		switch {
		case serr == nil && perr != nil:
			t.Fatalf("the sequential reader decodes %d bytes, in parallel: %v", len(seq), perr)
		case serr != nil && perr == nil:
			t.Fatalf("in parallel %d bytes decode, the sequential reader: %v", len(sink.img), serr)
		case serr == nil && (!bytes.Equal(seq, sink.img) || int64(len(seq)) != out):
			t.Fatalf("sequential %d bytes, parallel %d, index %d: they differ", len(seq), len(sink.img), out)
		}
	})
}

// FuzzXzReader: bty's xz container reader decodes what ulikunitz/xz decodes,
// to the same bytes, and refuses what it refuses. Where the two disagree, xz
// itself decides (ulikunitz takes a stream cut after its header, for one,
// which xz refuses as truncated): bty must agree with xz.
func FuzzXzReader(f *testing.F) {
	for _, s := range xzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		var got []byte
		var full bool
		r, err := newXzReader(bytes.NewReader(src))
		if err == nil {
			got, full, err = readMax(r)
		}
		var want []byte
		var wfull bool
		u, uerr := xz.NewReader(bytes.NewReader(src))
		if uerr == nil {
			want, wfull, uerr = readMax(u)
		}
		switch {
		case full || wfull:
			return
		case err == nil && uerr == nil && !bytes.Equal(got, want):
			t.Fatalf("bty decodes %d bytes, ulikunitz %d: they differ", len(got), len(want))
		case (err == nil) == (uerr == nil):
			return
		}
		cmd := exec.Command("xz", "-dc")
		cmd.Stdin = bytes.NewReader(src)
		ref, xerr := cmd.Output()
		var exit *exec.ExitError
		if xerr != nil && !errors.As(xerr, &exit) {
			t.Skipf("bty: %v, ulikunitz: %v; xz to decide: %v", err, uerr, xerr)
		}
		if (err == nil) != (xerr == nil) || err == nil && !bytes.Equal(got, ref) {
			t.Fatalf("bty: %d bytes, %v; xz: %d bytes, %v (ulikunitz: %v)", len(got), err, len(ref), xerr, uerr)
		}
	})
}

// FuzzBzScanner: the blocks the scanner cuts out and decodes in parallel are
// the image dsnet's sequential reader decodes, and each path decodes what the
// other does.
func FuzzBzScanner(f *testing.F) {
	enc := func(data []byte, level int) []byte {
		var b bytes.Buffer
		w, _ := bzip2.NewWriter(&b, &bzip2.WriterConfig{Level: level})
		w.Write(data)
		w.Close()
		return b.Bytes()
	}
	text := bytes.Repeat([]byte("bty writes images; "), 8000)
	two := enc(imageLike(150000, 3), 1) // two blocks at level 1
	f.Add(enc(text, 9))
	f.Add(two)
	f.Add(enc(nil, 9))
	f.Add(append(enc(text[:1000], 1), enc(text, 2)...))
	f.Add(two[:len(two)-7])
	f.Fuzz(func(t *testing.T, src []byte) {
		d, err := bzip2.NewReader(bytes.NewReader(src), nil)
		if err != nil {
			t.Skip()
		}
		seq, full, serr := readMax(d)
		if full {
			return
		}
		sink := &growSink{}
		s := newBzScanner(bytes.NewReader(src))
		_, perr := s.head()
		if perr == nil {
			perr = bzip2Parallel(context.Background(), s, sink)
		}
		switch {
		case serr == nil && perr != nil:
			t.Fatalf("the sequential reader decodes %d bytes, in parallel: %v", len(seq), perr)
		case serr != nil && perr == nil:
			t.Fatalf("in parallel %d bytes decode, the sequential reader: %v", len(sink.img), serr)
		case serr == nil && !bytes.Equal(seq, sink.img):
			t.Fatalf("sequential %d bytes, parallel %d: they differ", len(seq), len(sink.img))
		}
	})
}

// FuzzRelocateGPT: whatever the first MiB of an image holds, relocateGPT
// either leaves it alone or returns a GPT that is whole: the primary header
// points at a backup header at the disk's last sector, which points back and
// at a copy of the entry array just before it.
func FuzzRelocateGPT(f *testing.F) {
	for _, lbs := range []uint64{512, 4096} {
		head, _ := gpt.Layout(lbs, 8<<20/lbs, gpt.MustParseGUID("B7D1E5A0-0D3C-4C55-9A3E-62C0BDE30000"), []gpt.Partition{{First: 2048 * 512 / lbs, Last: 4096 * 512 / lbs, Name: "a"}})
		f.Add(head, uint8(lbs>>10), uint32(64<<20/lbs))
		f.Add(head, uint8(lbs>>10), uint32(8<<20/lbs))
	}
	f.Add([]byte("not a gpt"), uint8(0), uint32(1000))
	f.Fuzz(func(t *testing.T, image []byte, shift uint8, sectors uint32) {
		lbs := int64(512) << (shift % 4)
		head := make([]byte, max(64<<10, len(image)))
		copy(head, image)
		before := bytes.Clone(head)
		diskSize := int64(sectors) * lbs
		backup, off, ok := relocateGPT(head, lbs, diskSize)
		if !ok {
			if !bytes.Equal(head, before) {
				t.Fatalf("relocateGPT refused, and changed the image's head")
			}
			return
		}
		lastLBA := uint64(diskSize/lbs - 1)
		p, err := gpt.ParseHeader(head[lbs : 2*lbs])
		if err != nil || p.AlternateLBA != lastLBA {
			t.Fatalf("primary header after relocation: %+v, %v; want one that points at LBA %d", p, err, lastLBA)
		}
		b, err := gpt.ParseHeader(backup[int64(len(backup))-lbs:])
		if err != nil || b.MyLBA != lastLBA || b.AlternateLBA != 1 || int64(b.EntriesLBA)*lbs != off {
			t.Fatalf("backup header: %+v, %v; want it at LBA %d, pointing at LBA 1 and its array at byte %d", b, err, lastLBA, off)
		}
		entries := int64(p.NumEntries) * int64(p.EntrySize)
		arr := head[int64(p.EntriesLBA)*lbs:][:entries]
		if off+int64(len(backup)) != int64(lastLBA+1)*lbs || int64(len(backup))%lbs != 0 || !bytes.Equal(backup[:entries], arr) || gpt.ArrayCRC(arr) != b.EntriesCRC || p.LastUsableLBA >= b.EntriesLBA {
			t.Fatalf("backup of %d bytes at %d on a disk of %d: not the primary's array before the last sector", len(backup), off, diskSize)
		}
	})
}
