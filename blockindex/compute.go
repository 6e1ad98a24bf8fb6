package blockindex

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
)

// Compute reads the decoded image r to its end and returns its index in
// blocks of blockSize. each, when not nil, is called with every block in
// order (block is valid only during the call); an error from it ends
// Compute. An image of more than MaxBlocks blocks is refused.
func Compute(r io.Reader, blockSize int64, each func(i int, sum [32]byte, block []byte) error) (*Index, error) {
	ix := &Index{BlockSize: blockSize, Digest: "sha256:" + hex.EncodeToString(make([]byte, 32))}
	if err := ix.checkHeader(); err != nil {
		return nil, err
	}
	whole := sha256.New()
	buf := make([]byte, blockSize)
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if len(ix.Blocks) == MaxBlocks {
				return nil, corruptf("block index: the image is longer than %d blocks of %d bytes, the most an index holds: index it in larger blocks", MaxBlocks, blockSize)
			}
			b := buf[:n]
			whole.Write(b)
			sum := sha256.Sum256(b)
			if each != nil {
				if err := each(len(ix.Blocks), sum, b); err != nil {
					return nil, err
				}
			}
			ix.Blocks = append(ix.Blocks, sum)
			ix.Length += int64(n)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	ix.Digest = "sha256:" + hex.EncodeToString(whole.Sum(nil))
	return ix, nil
}
