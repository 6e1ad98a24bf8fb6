// Package blockindex owns delta reflash's content addressing: the block
// index of a decoded image (the sha256 of every fixed-size block, the decoded
// length and the image's digest), its byte encoding, and the block store that
// keeps each distinct block once, zstd-compressed, under its digest.
//
//	decoded image -> Compute -> Index ----Encode----> <hex>.index (docs/delta.md)
//	                    |                  <--Decode-- (strict, bounded)
//	                    +-> Store.Put -> DIR/sha256/<hex> (zstd; identical blocks once)
//	DIR/sha256/<hex> -> GET /blocks/sha256/<hex> -> Unpack (size and digest checked)
//
// The store's layout is the URL layout: a store directory served as it is
// answers the block route, and a block's URL is "sha256/<hex>" resolved
// against the index's URL.
//
// It imports nothing of bty's, a leaf like format and gpt (catalog gives its
// errors their category where it reads an index or a block); bty serve fills
// a store, the flasher reads an index and fetches what its target lacks.
package blockindex
