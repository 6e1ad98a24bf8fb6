package flash

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ulikunitz/xz"

	"bty/format"
)

// TestProbeOf: each format's magic finds its prober (bty/format tests the
// magic itself); a tar archive is raw to the probers, and the tar check
// finds it.
func TestProbeOf(t *testing.T) {
	tar := make([]byte, 512)
	copy(tar[257:], "ustar\x0000")
	for _, tc := range []struct {
		name string
		head []byte
		want format.Format
	}{
		{"gzip", []byte("\x1f\x8b\x08\x00"), format.Gzip},
		{"xz", []byte("\xfd7zXZ\x00\x00\x04"), format.Xz},
		{"zstd", []byte("\x28\xb5\x2f\xfd\x04"), format.Zstd},
		{"zstd skippable frame first", []byte("\x50\x2a\x4d\x18\x04\x00\x00\x00"), format.Zstd},
		{"bzip2", []byte("BZh91AY&SY"), format.Bzip2},
		{"BZh without level is raw", []byte("BZhx"), format.Raw},
		{"qcow2", []byte("QFI\xfb\x00\x00\x00\x03"), format.Qcow2},
		{"mbr", append(make([]byte, 510), 0x55, 0xaa), format.Raw},
		{"empty", nil, format.Raw},
		{"tar is raw to the sniffer", tar, format.Raw},
	} {
		if got := probeOf(tc.head).format; got != tc.want {
			t.Errorf("probeOf(%s) = %s, want %s", tc.name, got, tc.want)
		}
	}
	if !isTar(tar) || isTar(make([]byte, 512)) {
		t.Errorf("isTar(ustar at 257) = %v, isTar(zeros) = %v, want true, false", isTar(tar), isTar(make([]byte, 512)))
	}
	for _, f := range format.All {
		if !slices.ContainsFunc(probers, func(p prober) bool { return p.format == f }) {
			t.Errorf("no prober for %s", f)
		}
	}
}

// TestXzSize reads the decoded size from the index of single- and multi-stream
// files, with stream padding, and gives up on garbage.
func TestXzSize(t *testing.T) {
	enc := func(n int) []byte {
		var b bytes.Buffer
		w, err := xz.NewWriter(&b)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(bytes.Repeat([]byte("bty"), n/3))
		w.Write(make([]byte, n%3))
		w.Close()
		return b.Bytes()
	}
	one, two := enc(100000), enc(7)
	cat := append(append(append([]byte{}, one...), 0, 0, 0, 0), two...)
	for _, tc := range []struct {
		name string
		b    []byte
		want int64
	}{
		{"one stream", one, 100000},
		{"two streams with padding", cat, 100007},
		{"trailing padding", append(append([]byte{}, one...), 0, 0, 0, 0, 0, 0, 0, 0), 100000},
		{"truncated", one[:len(one)-3], -1},
		{"garbage", bytes.Repeat([]byte{7}, 100), -1},
	} {
		if got, exact := xzProber.size(context.Background(), tc.b, bytes.NewReader(tc.b), int64(len(tc.b))); got != tc.want || exact != (tc.want >= 0) {
			t.Errorf("xzSize(%s) = %d exact %v, want %d exact %v", tc.name, got, exact, tc.want, tc.want >= 0)
		}
	}
	if _, err := exec.LookPath("xz"); err == nil {
		// xz -T2 writes several blocks per stream.
		data := bytes.Repeat([]byte("0123456789abcdef"), 3<<20/16)
		cmd := exec.Command("xz", "-T2", "--block-size=1MiB", "-c")
		cmd.Stdin = bytes.NewReader(data)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := xzProber.size(context.Background(), out, bytes.NewReader(out), int64(len(out))); got != int64(len(data)) {
			t.Errorf("xzSize(xz -T2 multi-block) = %d, want %d", got, len(data))
		}
	}
}

func TestZstdSize(t *testing.T) {
	for _, tc := range []struct {
		name  string
		head  string
		want  int64
		exact bool
	}{
		{"single segment, 1-byte size", "\x28\xb5\x2f\xfd\x20\x64", 100, true},
		{"2-byte size is offset by 256", "\x28\xb5\x2f\xfd\x60\x00\x01", 512, true},
		{"4-byte size after window byte", "\x28\xb5\x2f\xfd\x80\x58\x00\x00\x10\x00", 1 << 20, true},
		{"8-byte size", "\x28\xb5\x2f\xfd\xc0\x58\x00\x00\x00\x80\x00\x00\x00\x00", 1 << 31, true},
		{"1-byte dictionary id then size", "\x28\xb5\x2f\xfd\x21\x07\x64", 100, true},
		{"no size recorded", "\x28\xb5\x2f\xfd\x04\x00", -1, false},
		// pzstd: a frame per chunk, so the first frame's size is a lower bound.
		{"skippable frame first", "\x50\x2a\x4d\x18\x03\x00\x00\x00abc\x28\xb5\x2f\xfd\x20\x64", 100, false},
		{"cut short", "\x28\xb5\x2f\xfd\x80\x58\x00", -1, false},
	} {
		if got, exact := zstdSize(context.Background(), []byte(tc.head), nil, -1); got != tc.want || exact != tc.exact {
			t.Errorf("zstdSize(%s) = %d exact %v, want %d exact %v", tc.name, got, exact, tc.want, tc.exact)
		}
	}
	if _, err := exec.LookPath("zstd"); err == nil {
		// The zstd tool records the size of a file it compresses.
		in := filepath.Join(t.TempDir(), "in")
		if err := os.WriteFile(in, make([]byte, 5<<20+3), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("zstd", "-q", "-c", in).Output()
		if err != nil {
			t.Fatal(err)
		}
		if got, exact := zstdSize(context.Background(), out, nil, -1); got != 5<<20+3 || !exact {
			t.Errorf("zstdSize(zstd -c of %d bytes) = %d exact %v, want exact", 5<<20+3, got, exact)
		}
	}
}
