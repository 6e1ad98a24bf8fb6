package blockindex

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Store is a directory of blocks, each stored once under its digest as
// DIR/sha256/<hex>, zstd-compressed, and of encoded indexes as
// DIR/<hex>.index under the digest of their encoding. A file appears under its
// name whole (written aside, then renamed), so a reader never sees half of
// one. Several Stores, in this process or others, may share a directory.
type Store struct {
	dir string
}

// OpenStore opens the store in dir, creating it if need be.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, "sha256"), 0o755); err != nil {
		return nil, fmt.Errorf("block store: %w", err)
	}
	return &Store{dir: dir}, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// BlockPath returns the file of the compressed block sum (which may not exist).
func (s *Store) BlockPath(sum [32]byte) string {
	return filepath.Join(s.dir, "sha256", Hex(sum))
}

// IndexPath returns the file of the encoded index whose encoding has digest
// sum (which may not exist).
func (s *Store) IndexPath(sum [32]byte) string {
	return filepath.Join(s.dir, Hex(sum)+".index")
}

// Put stores block under sum, its sha256, unless the store has it. It
// returns the compressed size written, 0 when the block was there.
func (s *Store) Put(sum [32]byte, block []byte) (int64, error) {
	path := s.BlockPath(sum)
	if _, err := os.Stat(path); err == nil {
		return 0, nil
	}
	packed := encoder().EncodeAll(block, make([]byte, 0, len(block)/2))
	if err := writeFile(path, packed); err != nil {
		return 0, fmt.Errorf("block store: %w", err)
	}
	return int64(len(packed)), nil
}

// Get returns block sum of the given size, decompressed and checked.
func (s *Store) Get(sum [32]byte, size int64) ([]byte, error) {
	packed, err := os.ReadFile(s.BlockPath(sum))
	if err != nil {
		return nil, fmt.Errorf("block store: %w", err)
	}
	return Unpack(packed, sum, size)
}

// Stats says what Add stored.
type Stats struct {
	Blocks       int   // blocks in the image
	New          int   // blocks the store did not have
	NewBytes     int64 // their decoded length
	PackedBytes  int64 // their compressed length, as written
	IndexDigest  string
	IndexPresent bool // the store had this very index already
}

// Add indexes the decoded image r in blocks of blockSize, stores the blocks
// the store does not have, and stores the encoded index. It returns the index
// and the sha256 of its encoding ("sha256:<hex>").
func (s *Store) Add(r io.Reader, blockSize int64) (*Index, Stats, error) {
	var st Stats
	ix, err := Compute(r, blockSize, func(_ int, sum [32]byte, b []byte) error {
		n, err := s.Put(sum, b)
		if n > 0 {
			st.New++
			st.NewBytes += int64(len(b))
			st.PackedBytes += n
		}
		return err
	})
	if err != nil {
		return nil, st, err
	}
	st.Blocks = len(ix.Blocks)
	var buf bytes.Buffer
	if err := ix.Encode(&buf); err != nil {
		return nil, st, err
	}
	isum := sha256.Sum256(buf.Bytes())
	st.IndexDigest = "sha256:" + Hex(isum)
	path := s.IndexPath(isum)
	if _, err := os.Stat(path); err == nil {
		st.IndexPresent = true
	} else if err := writeFile(path, buf.Bytes()); err != nil {
		return nil, st, fmt.Errorf("block store: %w", err)
	}
	return ix, st, nil
}

// writeFile writes data to path through a temporary file in the same
// directory and a rename: path is absent or whole.
func writeFile(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".put-*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// PackedLimit is the most bytes a compressed block of size bytes may take
// (zstd's bound for stored data plus frame overhead): a client reading a
// block from the network stops there.
func PackedLimit(size int64) int64 { return size + size>>7 + 4096 }

// Unpack decompresses a block fetched or read from a store and checks it:
// exactly size bytes whose sha256 is sum. An error wraps ErrCorrupt.
func Unpack(packed []byte, sum [32]byte, size int64) ([]byte, error) {
	if size < 0 || size > MaxBlockSize {
		return nil, corruptf("block %s: size %d is out of bounds", Hex(sum), size)
	}
	b, err := decoder().DecodeAll(packed, make([]byte, 0, size))
	if err != nil {
		return nil, corruptf("block %s: not a zstd stream of %d bytes: %v", Hex(sum), size, err)
	}
	if int64(len(b)) != size {
		return nil, corruptf("block %s: %d bytes, want %d", Hex(sum), len(b), size)
	}
	if sha256.Sum256(b) != sum {
		return nil, corruptf("block %s: its sha256 does not match its name", Hex(sum))
	}
	return b, nil
}

// The coders are safe for concurrent EncodeAll and DecodeAll; one of each
// serves the process. The decoder stops at cap(dst), the block's size.
var (
	encoder = sync.OnceValue(func() *zstd.Encoder {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
		if err != nil {
			panic(err) // only for invalid options
		}
		return e
	})
	decoder = sync.OnceValue(func() *zstd.Decoder {
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecodeAllCapLimit(true), zstd.WithDecoderMaxMemory(MaxBlockSize))
		if err != nil {
			panic(err)
		}
		return d
	})
)
