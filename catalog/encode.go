package catalog

import (
	"io"

	"github.com/pelletier/go-toml/v2"
)

type tomlCatalog struct {
	Version int         `toml:"version"`
	Images  []tomlEntry `toml:"images"`
	Pending []tomlEntry `toml:"pending_images,omitempty"`
}

type tomlEntry struct {
	Name        string `toml:"name"`
	Src         string `toml:"src"`
	SHA256      string `toml:"sha256,omitempty"`
	Format      string `toml:"format,omitempty"`
	Size        int64  `toml:"size_bytes,omitempty"`
	Description string `toml:"description,omitempty"`
	Arch        string `toml:"arch,omitempty"`
	Ref         string `toml:"ref,omitempty"`
	// Additive (docs/delta.md): clients that do not know them ignore them.
	BlockIndex       string `toml:"block_index,omitempty"`
	BlockIndexDigest string `toml:"block_index_digest,omitempty"`
}

// Encode writes entries as a version 1 catalog, each with its ref; Pending
// entries go to [[pending_images]], after [[images]].
func Encode(w io.Writer, entries []Entry) error {
	c := tomlCatalog{Version: 1, Images: []tomlEntry{}}
	for _, e := range entries {
		te := tomlEntry{
			Name: e.Name, Src: e.Src, SHA256: e.SHA256, Format: e.Format, Size: e.Size,
			Description: e.Description, Arch: e.Arch, Ref: e.Ref,
			BlockIndex: e.BlockIndex, BlockIndexDigest: e.BlockIndexDigest,
		}
		if e.Pending {
			te.SHA256 = ""
			c.Pending = append(c.Pending, te)
			continue
		}
		c.Images = append(c.Images, te)
	}
	enc := toml.NewEncoder(w)
	enc.SetIndentTables(false)
	return enc.Encode(c)
}
