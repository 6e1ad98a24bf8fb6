package flash

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
)

// The qcow2 tests make images with qemu-img and qemu-io (Debian: qemu-utils)
// from raw data made here, and compare what stream delivers with the raw bytes.

func needQemuImg(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"qemu-img", "qemu-io"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (Debian package qemu-utils): %v", tool, err)
		}
	}
}

// qemu runs a qemu-img or qemu-io command in dir and fails the test if it
// fails. One failure is qemu-img's, not the command's: creating a LUKS image,
// it times 32768 PBKDF2 rounds to choose a count and gives up with "Unable
// to get accurate CPU usage" when the thread's CPU time did not move, which
// happens now and then on fast machines. Such a command is tried again, and
// the test is skipped only if every try hits that.
func qemu(t *testing.T, dir string, args ...string) {
	t.Helper()
	const defect = "Unable to get accurate CPU usage"
	for range 5 {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err == nil {
			return
		}
		if !bytes.Contains(out, []byte(defect)) {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	t.Skipf("%s: qemu-img could not time its key derivation 5 times (%s)", strings.Join(args, " "), defect)
}

// qcow2TestRaw is size bytes of runs of zeros, random bytes and compressible
// text, each run up to 300 KiB, so that clusters of every size see all kinds.
func qcow2TestRaw(size int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	src := rand.NewChaCha8([32]byte{byte(seed)})
	text := []byte("bty qcow2 test pattern: compressible, not zero. ")
	b := make([]byte, size)
	for off := 0; off < size; {
		n := min(size-off, 1+rng.IntN(300<<10))
		switch rng.IntN(3) {
		case 1:
			src.Read(b[off : off+n])
		case 2:
			for i := off; i < off+n; i += len(text) {
				copy(b[i:off+n], text)
			}
		}
		off += n
	}
	return b
}

// memSink assembles the guest image and counts how often each byte is
// delivered. Like the writer it is safe for concurrent use.
type memSink struct {
	mu       sync.Mutex
	img      []byte
	seen     []uint8
	maxPiece int
}

func newMemSink(size int64) *memSink {
	return &memSink{img: make([]byte, size), seen: make([]uint8, size)}
}

func (s *memSink) mark(off, n int64) error {
	if off < 0 || n <= 0 || off+n > int64(len(s.img)) {
		return fmt.Errorf("range [%d,+%d) outside [0,%d)", off, n, len(s.img))
	}
	for i := off; i < off+n; i++ {
		s.seen[i]++
	}
	return nil
}

func (s *memSink) Data(off int64, p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxPiece = max(s.maxPiece, len(p))
	if err := s.mark(off, int64(len(p))); err != nil {
		return err
	}
	copy(s.img[off:], p)
	return nil
}

func (s *memSink) Take(off int64, p []byte, release func()) error {
	defer release()
	return s.Data(off, p)
}

func (s *memSink) Zero(off, n int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mark(off, n)
}

func (s *memSink) ReadFrom(r io.Reader) (int64, error) { return readInto(s, r) }

// readInto is ReadFrom for the test sinks: the image from r, in order, as
// pieces of up to 1 MiB.
func readInto(s blockSink, r io.Reader) (int64, error) {
	buf := make([]byte, blockSize)
	for off := int64(0); ; {
		n, err := fill(r, buf)
		if n > 0 {
			if err := s.Data(off, buf[:n]); err != nil {
				return off, err
			}
			off += int64(n)
		}
		if err == io.EOF {
			return off, nil
		}
		if err != nil {
			return off, err
		}
	}
}

// check reports the first byte not delivered exactly once.
func (s *memSink) check() error {
	for i, c := range s.seen {
		if c != 1 {
			return fmt.Errorf("byte %d delivered %d times", i, c)
		}
	}
	return nil
}

// flashQcow2 parses and streams file, srcSize known or not, and returns the
// guest image.
func flashQcow2(t *testing.T, file []byte, knownSize bool, wrap func(io.Reader) io.Reader) (*qcow2Image, []byte, error) {
	t.Helper()
	size := int64(len(file))
	if !knownSize {
		size = -1
	}
	q, err := parseQcow2(bytes.NewReader(file), size)
	if err != nil {
		return nil, nil, err
	}
	sink := newMemSink(q.VirtualSize)
	cr := &countReader{r: bytes.NewReader(file)}
	var r io.Reader = cr
	if wrap != nil {
		r = wrap(r)
	}
	if err := q.stream(context.Background(), r, sink); err != nil {
		return nil, nil, err
	}
	if err := sink.check(); err != nil {
		t.Errorf("stream coverage: %v", err)
	}
	if sink.maxPiece > qcow2Chunk {
		t.Errorf("stream Data piece of %d bytes, want at most %d", sink.maxPiece, qcow2Chunk)
	}
	if cr.n > q.hostEnd {
		t.Errorf("stream read %d bytes, want at most %d (the last byte it needs)", cr.n, q.hostEnd)
	}
	return q, sink.img, nil
}

// pad returns raw zero-extended to size: qemu-img rounds sizes up to 512.
func pad(raw []byte, size int64) []byte {
	return append(slices.Clip(raw), make([]byte, size-int64(len(raw)))...)
}

func TestQcow2Images(t *testing.T) {
	needQemuImg(t)
	const rawSize = 3<<20 + 12345
	raw := qcow2TestRaw(rawSize, 1)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in.raw"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	convert := func(opts ...string) []string {
		return append([]string{"qemu-img", "convert", "-f", "raw", "-O", "qcow2"}, append(opts, "in.raw", "out.qcow2")...)
	}
	rounded := pad(raw, (rawSize+511)&^511)
	// fill is the rounded raw image with [off, off+n) set to b.
	fill := func(off, n int, b byte) []byte {
		w := slices.Clone(rounded)
		for i := off; i < off+n; i++ {
			w[i] = b
		}
		return w
	}
	tests := []struct {
		name string
		cmds [][]string
		want []byte
		// vsize, if set, is patched into the header after the commands, to
		// test a virtual size that is not a multiple of 512.
		vsize int64
	}{
		{name: "v2", cmds: [][]string{convert("-o", "compat=0.10")}, want: rounded},
		{name: "v3", cmds: [][]string{convert("-o", "compat=1.1")}, want: rounded},
		{name: "v3-512", cmds: [][]string{convert("-o", "cluster_size=512")}, want: rounded},
		{name: "v3-2M", cmds: [][]string{convert("-o", "cluster_size=2M")}, want: rounded},
		{name: "v2-compressed", cmds: [][]string{convert("-c", "-o", "compat=0.10")}, want: rounded},
		{name: "v3-compressed", cmds: [][]string{convert("-c")}, want: rounded},
		{name: "compressed-512", cmds: [][]string{convert("-c", "-o", "cluster_size=512")}, want: rounded},
		{name: "compressed-2M", cmds: [][]string{convert("-c", "-o", "cluster_size=2M")}, want: rounded},
		{name: "compressed-zstd", cmds: [][]string{convert("-c", "-o", "compression_type=zstd")}, want: rounded},
		{name: "compressed-zstd-512", cmds: [][]string{convert("-c", "-o", "compression_type=zstd,cluster_size=512")}, want: rounded},
		{name: "compressed-zstd-2M", cmds: [][]string{convert("-c", "-o", "compression_type=zstd,cluster_size=2M")}, want: rounded},
		{name: "odd-size", cmds: [][]string{convert()}, want: raw, vsize: rawSize},
		{name: "odd-size-compressed", cmds: [][]string{convert("-c")}, want: raw, vsize: rawSize},
		{name: "odd-size-compressed-512", cmds: [][]string{convert("-c", "-o", "cluster_size=512")}, want: raw, vsize: rawSize},
		{
			name: "zero-clusters",
			cmds: [][]string{convert("-o", "compat=1.1"), {"qemu-io", "-f", "qcow2", "-c", "write -z 0 1M", "-c", "write -z 2M 192k", "out.qcow2"}},
			want: nil, // built below
		},
		{
			name: "zero-clusters-v2",
			cmds: [][]string{convert("-o", "compat=0.10"), {"qemu-io", "-f", "qcow2", "-c", "write -z 64k 1M", "out.qcow2"}},
			want: fill(64<<10, 1<<20, 0),
		},
		{
			name: "snapshot",
			cmds: [][]string{
				convert(),
				{"qemu-img", "snapshot", "-c", "snap1", "out.qcow2"},
				{"qemu-io", "-f", "qcow2", "-c", "write -P 0xab 100k 300k", "out.qcow2"},
				{"qemu-img", "snapshot", "-c", "snap2", "out.qcow2"},
				{"qemu-io", "-f", "qcow2", "-c", "write -z 0 64k", "out.qcow2"},
			},
			want: nil,
		},
		{
			name: "extended-l2",
			cmds: [][]string{
				convert("-o", "extended_l2=on"),
				{"qemu-io", "-f", "qcow2", "-c", "write -z 4k 8k", "-c", "write -P 0x5a 70k 3k", "-c", "discard 2M 64k", "out.qcow2"},
			},
			want: nil, // built below
		},
		{
			name: "extended-l2-sparse",
			cmds: [][]string{
				{"qemu-img", "create", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=128k", "out.qcow2", "5M"},
				{"qemu-io", "-f", "qcow2", "-c", "write -P 0x11 4k 4k", "-c", "write -P 0x22 132k 120k", "-c", "write -P 0x33 4M 1k", "out.qcow2"},
			},
			want: nil,
		},
		{
			name: "preallocated-metadata",
			cmds: [][]string{
				{"qemu-img", "create", "-f", "qcow2", "-o", "preallocation=metadata", "out.qcow2", "3M"},
				{"qemu-io", "-f", "qcow2", "-c", "write -P 0x77 1M 5k", "out.qcow2"},
			},
			want: nil,
		},
	}
	// Cases whose expected image is easier to build here than inline.
	for i := range tests {
		tc := &tests[i]
		switch tc.name {
		case "zero-clusters":
			tc.want = fill(0, 1<<20, 0)
			clear(tc.want[2<<20 : 2<<20+192<<10])
		case "snapshot":
			tc.want = fill(100<<10, 300<<10, 0xab)
			clear(tc.want[:64<<10])
		case "extended-l2":
			tc.want = fill(70<<10, 3<<10, 0x5a)
			clear(tc.want[4<<10 : 12<<10])
			clear(tc.want[2<<20 : 2<<20+64<<10])
		case "extended-l2-sparse":
			tc.want = make([]byte, 5<<20)
			for _, w := range []struct {
				off, n int
				b      byte
			}{{4 << 10, 4 << 10, 0x11}, {132 << 10, 120 << 10, 0x22}, {4 << 20, 1 << 10, 0x33}} {
				copy(tc.want[w.off:], bytes.Repeat([]byte{w.b}, w.n))
			}
		case "preallocated-metadata":
			tc.want = make([]byte, 3<<20)
			copy(tc.want[1<<20:], bytes.Repeat([]byte{0x77}, 5<<10))
		}
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(filepath.Join(dir, "out.qcow2"))
			for _, c := range tc.cmds {
				qemu(t, dir, c...)
			}
			file, err := os.ReadFile(filepath.Join(dir, "out.qcow2"))
			if err != nil {
				t.Fatal(err)
			}
			if tc.vsize != 0 {
				binary.BigEndian.PutUint64(file[24:], uint64(tc.vsize))
			}
			for _, v := range []struct {
				name  string
				known bool
				wrap  func(io.Reader) io.Reader
			}{{"size-known", true, nil}, {"size-unknown", false, nil}, {"short-reads", true, iotest.HalfReader}} {
				q, got, err := flashQcow2(t, file, v.known, v.wrap)
				if err != nil {
					t.Fatalf("%s: parse+stream(%s) = %v, want nil", v.name, tc.name, err)
				}
				if has, want := q.maxCsize > 0, slices.Contains(tc.cmds[0], "-c"); has != want {
					t.Errorf("%s: has compressed clusters(%s) = %v, want %v", v.name, tc.name, has, want)
				}
				if len(got) != len(tc.want) {
					t.Fatalf("%s: len(image(%s)) = %d, want %d", v.name, tc.name, len(got), len(tc.want))
				}
				if i := firstDiff(got, tc.want); i >= 0 {
					t.Fatalf("%s: image(%s)[%d] = %#x, want %#x", v.name, tc.name, i, got[i], tc.want[i])
				}
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

func TestQcow2Refused(t *testing.T) {
	needQemuImg(t)
	dir := t.TempDir()
	create := func(name string, opts ...string) []string {
		return append(append([]string{"qemu-img", "create", "-f", "qcow2"}, opts...), name, "1M")
	}
	tests := []struct {
		name string
		cmds [][]string
		file string
		want error
		msg  string
	}{
		{
			name: "backing-file",
			cmds: [][]string{create("base.qcow2"), {"qemu-img", "create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "top.qcow2"}},
			file: "top.qcow2", want: ErrUnsupported, msg: `backing file ("base.qcow2"); flatten it first: qemu-img convert`,
		},
		{
			name: "data-file",
			cmds: [][]string{create("ext.qcow2", "-o", "data_file=ext.data")},
			file: "ext.qcow2", want: ErrUnsupported, msg: `external file ("ext.data")`,
		},
		{
			name: "encrypted-aes",
			cmds: [][]string{create("aes.qcow2", "--object", "secret,id=sec0,data=abc", "-o", "encrypt.format=aes,encrypt.key-secret=sec0")},
			file: "aes.qcow2", want: ErrUnsupported, msg: "encrypted (AES)",
		},
		{
			name: "encrypted-luks",
			cmds: [][]string{create("luks.qcow2", "--object", "secret,id=sec0,data=abc", "-o", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10")},
			file: "luks.qcow2", want: ErrUnsupported, msg: "encrypted (LUKS)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range tc.cmds {
				qemu(t, dir, c...)
			}
			file, err := os.ReadFile(filepath.Join(dir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			_, err = parseQcow2(bytes.NewReader(file), int64(len(file)))
			if !errors.Is(err, tc.want) || !strings.Contains(fmt.Sprint(err), tc.msg) {
				t.Fatalf("parseQcow2(%s) = %v, want %v containing %q", tc.file, err, tc.want, tc.msg)
			}
		})
	}
}

// qcow2Fixture converts raw test data to qcow2 with opts and returns the file.
func qcow2Fixture(t *testing.T, raw []byte, opts ...string) []byte {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in.raw"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	qemu(t, dir, append(append([]string{"qemu-img", "convert", "-f", "raw", "-O", "qcow2"}, opts...), "in.raw", "out.qcow2")...)
	file, err := os.ReadFile(filepath.Join(dir, "out.qcow2"))
	if err != nil {
		t.Fatal(err)
	}
	return file
}

// TestQcow2Malformed patches images made by qemu-img and checks that each
// defect is an error in the right category, never a panic or a silent success.
func TestQcow2Malformed(t *testing.T) {
	needQemuImg(t)
	raw := qcow2TestRaw(1<<20+4321, 2)
	plain := qcow2Fixture(t, raw, "-o", "cluster_size=4k")
	small := qcow2Fixture(t, raw, "-o", "cluster_size=512") // many L1 entries
	compressed := qcow2Fixture(t, raw, "-c", "-o", "cluster_size=4k")
	be := binary.BigEndian
	l1 := func(f []byte) int64 { return int64(be.Uint64(f[40:])) }
	// l2 returns the offset of the L2 entry for guest cluster j of the first
	// L2 table.
	l2 := func(f []byte, j int) int64 { return int64(be.Uint64(f[l1(f):])&qcow2OffsetMask) + int64(j)*8 }
	// firstCompressed is the host range of the first compressed cluster.
	firstCompressed := func(f []byte) (int64, int64) {
		cb := be.Uint32(f[20:])
		for j := 0; ; j++ {
			e := be.Uint64(f[l2(f, j):])
			if e&qcow2Compressed != 0 {
				x := 62 - (cb - 8)
				return int64(e & (1<<x - 1)), int64((e>>x)&(1<<(cb-8)-1)+1) * 512
			}
		}
	}
	tests := []struct {
		name  string
		base  []byte
		patch func(f []byte) []byte
		want  error
	}{
		{"truncated-half", plain, func(f []byte) []byte { return f[:len(f)/2] }, ErrCorrupt},
		{"truncated-compressed", compressed, func(f []byte) []byte { return f[:len(f)*2/3] }, ErrCorrupt},
		{"truncated-header", plain, func(f []byte) []byte { return f[:50] }, ErrCorrupt},
		{"version-1", plain, func(f []byte) []byte { be.PutUint32(f[4:], 1); return f }, ErrUnsupported},
		{"version-4", plain, func(f []byte) []byte { be.PutUint32(f[4:], 4); return f }, ErrUnsupported},
		{"cluster-bits-8", plain, func(f []byte) []byte { be.PutUint32(f[20:], 8); return f }, ErrCorrupt},
		{"cluster-bits-22", plain, func(f []byte) []byte { be.PutUint32(f[20:], 22); return f }, ErrCorrupt},
		{"dirty", plain, func(f []byte) []byte { f[79] |= qcow2Dirty; return f }, ErrUnsupported},
		{"corrupt-bit", plain, func(f []byte) []byte { f[79] |= qcow2Corrupt; return f }, ErrCorrupt},
		{"unknown-incompatible", plain, func(f []byte) []byte { f[79] |= 1 << 5; return f }, ErrUnsupported},
		{"data-file-bit", plain, func(f []byte) []byte { f[79] |= qcow2DataFile; return f }, ErrUnsupported},
		{"compression-type-2", plain, func(f []byte) []byte { f[79] |= qcow2Compression; f[104] = 2; return f }, ErrUnsupported},
		{"compression-type-no-bit", plain, func(f []byte) []byte { f[104] = 1; return f }, ErrCorrupt},
		{"header-length-small", plain, func(f []byte) []byte { be.PutUint32(f[100:], 96); return f }, ErrCorrupt},
		{"virtual-size-0", plain, func(f []byte) []byte { be.PutUint64(f[24:], 0); return f }, ErrCorrupt},
		{"virtual-size-huge", plain, func(f []byte) []byte { be.PutUint64(f[24:], 1<<62); return f }, ErrCorrupt},
		{"virtual-size-max", plain, func(f []byte) []byte { be.PutUint64(f[24:], 1<<64-1); return f }, ErrCorrupt},
		{"l1-too-small", small, func(f []byte) []byte { be.PutUint32(f[36:], 1); return f }, ErrCorrupt},
		{"l1-misaligned", plain, func(f []byte) []byte { be.PutUint64(f[40:], uint64(l1(f)+8)); return f }, ErrCorrupt},
		{"l1-past-end", plain, func(f []byte) []byte { be.PutUint64(f[40:], 1<<40); return f }, ErrCorrupt},
		{"l2-misaligned", plain, func(f []byte) []byte { be.PutUint64(f[l1(f):], be.Uint64(f[l1(f):])+512); return f }, ErrCorrupt},
		{"l2-past-end", plain, func(f []byte) []byte { be.PutUint64(f[l1(f):], 1<<40); return f }, ErrCorrupt},
		{"l2-shared", small, func(f []byte) []byte { copy(f[l1(f)+8:], f[l1(f):l1(f)+8]); return f }, ErrCorrupt},
		{"data-misaligned", plain, func(f []byte) []byte { be.PutUint64(f[l2(f, 0):], be.Uint64(f[l2(f, 0):])+512); return f }, ErrCorrupt},
		{"data-past-end", plain, func(f []byte) []byte { be.PutUint64(f[l2(f, 0):], 1<<40); return f }, ErrCorrupt},
		{"compressed-garbage", compressed, func(f []byte) []byte {
			off, _ := firstCompressed(f)
			copy(f[off:], bytes.Repeat([]byte{0xff}, 64))
			return f
		}, ErrCorrupt},
		{"compressed-short", compressed, func(f []byte) []byte {
			// One sector for a cluster that needs more: it cannot inflate fully.
			x := 62 - (12 - 8)
			for j := 0; ; j++ {
				e := be.Uint64(f[l2(f, j):])
				if e&qcow2Compressed != 0 && (e>>x)&(1<<(12-8)-1) >= 2 {
					be.PutUint64(f[l2(f, j):], e&^(uint64(1<<(12-8)-1)<<x))
					return f
				}
			}
		}, ErrCorrupt},
		{"compressed-offset-0", compressed, func(f []byte) []byte {
			for j := 0; ; j++ {
				if e := be.Uint64(f[l2(f, j):]); e&qcow2Compressed != 0 {
					be.PutUint64(f[l2(f, j):], e&^(1<<58-1))
					return f
				}
			}
		}, ErrCorrupt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, known := range []bool{true, false} {
				f := tc.patch(slices.Clone(tc.base))
				_, _, err := flashQcow2(t, f, known, nil)
				if !errors.Is(err, tc.want) {
					t.Errorf("parse+stream(%s, size known %v) = %v, want %v", tc.name, known, err, tc.want)
				}
			}
		})
	}
}

// TestQcow2SharedCluster maps two guest clusters to one host cluster, which
// the format allows: both must read its bytes.
func TestQcow2SharedCluster(t *testing.T) {
	needQemuImg(t)
	raw := qcow2TestRaw(1<<20, 3)
	for i := range 2048 { // no zero clusters at the start
		raw[i] |= 1
	}
	f := qcow2Fixture(t, raw, "-o", "cluster_size=512")
	be := binary.BigEndian
	l2 := int64(be.Uint64(f[be.Uint64(f[40:]):]) & qcow2OffsetMask)
	copy(f[l2+3*8:], f[l2:l2+8]) // guest cluster 3 -> host cluster of guest cluster 0
	want := slices.Clone(raw)
	copy(want[3*512:4*512], raw[:512])
	_, got, err := flashQcow2(t, f, true, nil)
	if err != nil {
		t.Fatalf("parse+stream(shared cluster) = %v, want nil", err)
	}
	if i := firstDiff(got, want); i >= 0 {
		t.Fatalf("image(shared cluster)[%d] = %#x, want %#x", i, got[i], want[i])
	}
}

// qcow2Seed builds a small valid image: 512-byte clusters, a 4 KiB virtual
// size less 100 bytes, one L2 table with a data cluster, a zero cluster (v3), a
// compressed cluster and unallocated ones. It is packed tight, the data
// cluster being the L1 table's own, because the fuzzer's minimizer is
// quadratic in the input size.
func qcow2Seed(version uint32) []byte {
	const cs = 512
	be := binary.BigEndian
	var z bytes.Buffer
	w, _ := flate.NewWriter(&z, flate.BestCompression)
	w.Write(bytes.Repeat([]byte("ab"), cs/2))
	w.Close()
	coff := int64(2*cs + 8*8) // after the L2 table's 8 entries
	f := make([]byte, coff+int64(z.Len()))
	copy(f, "QFI\xfb")
	be.PutUint32(f[4:], version)
	be.PutUint32(f[20:], 9)
	be.PutUint64(f[24:], 4096-100)
	be.PutUint32(f[36:], 1)  // l1_size
	be.PutUint64(f[40:], cs) // l1_table_offset
	if version == 3 {
		be.PutUint32(f[96:], 4)    // refcount_order
		be.PutUint32(f[100:], 112) // header_length
	}
	be.PutUint64(f[cs:], 2*cs|1<<63) // L1[0] -> L2 at 1024
	l2 := f[2*cs:]
	be.PutUint64(l2[0:], cs|1<<63) // data: the L1 table's cluster
	be.PutUint64(l2[8:], 0)        // unallocated
	if version == 3 {
		be.PutUint64(l2[16:], 1) // zero
	}
	be.PutUint64(l2[24:], cs) // the same host cluster again
	copy(f[coff:], z.Bytes())
	x := 62 - (9 - 8)
	sectors := (int64(z.Len())+coff%512+511)/512 - 1
	be.PutUint64(l2[56:], 1<<62|uint64(sectors)<<x|uint64(coff)) // last cluster, compressed
	return f
}

func TestQcow2Seed(t *testing.T) {
	for _, v := range []uint32{2, 3} {
		f := qcow2Seed(v)
		_, got, err := flashQcow2(t, f, true, nil)
		if err != nil {
			t.Fatalf("parse+stream(seed v%d) = %v, want nil", v, err)
		}
		want := make([]byte, 4096-100)
		copy(want, f[512:1024])
		copy(want[3*512:], f[512:1024])
		copy(want[7*512:], bytes.Repeat([]byte("ab"), 256))
		if i := firstDiff(got, want); i >= 0 {
			t.Fatalf("image(seed v%d)[%d] = %#x, want %#x", v, i, got[i], want[i])
		}
	}
}

// boundSink checks that every piece lies inside the image and no byte is
// delivered twice, without allocating the (possibly huge) image.
type boundSink struct {
	mu     sync.Mutex
	size   int64
	ranges [][2]int64
}

func (s *boundSink) add(off, n int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if off < 0 || n <= 0 || off > s.size || n > s.size-off {
		return fmt.Errorf("range [%d,+%d) outside [0,%d)", off, n, s.size)
	}
	s.ranges = append(s.ranges, [2]int64{off, off + n})
	return nil
}

func (s *boundSink) Data(off int64, p []byte) error { return s.add(off, int64(len(p))) }
func (s *boundSink) Take(off int64, p []byte, release func()) error {
	defer release()
	return s.Data(off, p)
}
func (s *boundSink) Zero(off, n int64) error             { return s.add(off, n) }
func (s *boundSink) ReadFrom(r io.Reader) (int64, error) { return readInto(s, r) }

func FuzzQcow2(f *testing.F) {
	f.Add(qcow2Seed(2))
	f.Add(qcow2Seed(3))
	f.Fuzz(func(t *testing.T, file []byte) {
		for _, size := range []int64{int64(len(file)), -1} {
			q, err := parseQcow2(bytes.NewReader(file), size)
			if err != nil {
				continue
			}
			sink := &boundSink{size: q.VirtualSize}
			if err := q.stream(context.Background(), bytes.NewReader(file), sink); err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("stream(size %d) = %v, want nil or ErrCorrupt", size, err)
				}
				continue
			}
			slices.SortFunc(sink.ranges, func(a, b [2]int64) int { return int(min(max(a[0]-b[0], -1), 1)) })
			at := int64(0)
			for _, r := range sink.ranges {
				if r[0] != at {
					t.Fatalf("stream(size %d) delivered [%d,%d) after %d: gap or overlap", size, r[0], r[1], at)
				}
				at = r[1]
			}
			if at != q.VirtualSize {
				t.Fatalf("stream(size %d) delivered up to %d, want %d", size, at, q.VirtualSize)
			}
		}
	})
}
