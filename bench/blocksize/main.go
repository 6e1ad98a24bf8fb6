// Command blocksize measures what delta reflash costs at each block size,
// for two versions of an image (bench/blocksize.sh builds them): the index's
// size, and the blocks, bytes and compressed bytes a client holding the old
// version fetches to get the new one. docs/delta.md cites its output.
//
//	go run ./bench/blocksize OLD.img NEW.img
package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"bty/blockindex"

	"github.com/klauspost/compress/zstd"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: go run ./bench/blocksize OLD.img NEW.img")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "blocksize:", err)
		os.Exit(1)
	}
}

func run(oldPath, newPath string) error {
	changed, err := changedBytes(oldPath, newPath)
	if err != nil {
		return err
	}
	fmt.Printf("changed: %.1f MiB in 4 KiB blocks (the least any block size can fetch)\n\n", float64(changed)/(1<<20))
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "block\tblocks\tindex\tfetched blocks\tfetched MiB\tx changed\tzstd MiB\tindex time\t")
	for _, bs := range []int64{64 << 10, 256 << 10, 1 << 20, 4 << 20} {
		start := time.Now()
		old, err := index(oldPath, bs, nil)
		if err != nil {
			return err
		}
		took := time.Since(start)
		have := map[[32]byte]bool{}
		for _, b := range old.Blocks {
			have[b] = true
		}
		// What a client holding OLD fetches: each distinct block of NEW it
		// does not have anywhere.
		var n int
		var raw, packed int64
		if _, err := index(newPath, bs, func(_ int, sum [32]byte, b []byte) error {
			if !have[sum] {
				have[sum] = true
				n++
				raw += int64(len(b))
				packed += int64(len(enc.EncodeAll(b, nil)))
			}
			return nil
		}); err != nil {
			return err
		}
		var ixBuf bytes.Buffer
		if err := old.Encode(&ixBuf); err != nil {
			return err
		}
		fmt.Fprintf(tw, "%d KiB\t%d\t%.2f MiB\t%d\t%.1f\t%.2f\t%.1f\t%s\t\n", bs>>10, len(old.Blocks), float64(ixBuf.Len())/(1<<20),
			n, float64(raw)/(1<<20), float64(raw)/float64(changed), float64(packed)/(1<<20), took.Round(100*time.Millisecond))
	}
	return tw.Flush()
}

func index(path string, bs int64, each func(int, [32]byte, []byte) error) (*blockindex.Index, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return blockindex.Compute(f, bs, each)
}

// changedBytes counts the 4 KiB blocks that differ between the two images.
func changedBytes(a, b string) (int64, error) {
	fa, err := os.Open(a)
	if err != nil {
		return 0, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return 0, err
	}
	defer fb.Close()
	const bs = 4 << 10
	pa, pb := make([]byte, 1<<20), make([]byte, 1<<20)
	var changed int64
	for {
		na, ea := io.ReadFull(fa, pa)
		nb, _ := io.ReadFull(fb, pb)
		for off := 0; off < max(na, nb); off += bs {
			if !bytes.Equal(pa[off:min(off+bs, na)], pb[off:min(off+bs, nb)]) {
				changed += bs
			}
		}
		if ea != nil {
			return changed, nil
		}
	}
}
