package catalog

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// Catalog is a valid catalog (docs/catalog.md).
type Catalog struct {
	Source string // where it was read from, as the user named it
	Images []Entry
}

// Entry is one image: a catalog row, or a file of the image root.
type Entry struct {
	Name        string `json:"name"`
	Src         string `json:"src"`              // http(s)://, oras://, or the absolute path of an image-root file
	SHA256      string `json:"sha256,omitempty"` // lower-case hex of the bytes at Src, "" when unknown
	Format      string `json:"format,omitempty"` // the catalog's hint, or the sniffed format of an image-root file
	Size        int64  `json:"size_bytes,omitempty"`
	Description string `json:"description,omitempty"`
	Arch        string `json:"arch,omitempty"`
	Ref         string `json:"ref"`    // canonical ref (docs/catalog.md, canonical refs); for image-root files, of the file:// URL
	From        string `json:"source"` // the catalog it came from, or the image root directory
	Line        int    `json:"-"`      // line in its catalog, 0 when unknown
	Note        string `json:"note,omitempty"`
	// Pending: the catalog lists the image in [[pending_images]], because its
	// server has not computed the sha256 yet. It is shown but not flashed.
	Pending bool `json:"sha256_pending,omitempty"`
	// BlockIndex is where the image's block index is for delta reflash
	// (docs/delta.md): an http(s) URL, or a local path when the catalog is a
	// local file; "" when there is none. A relative block_index is resolved
	// against the catalog's URL or directory when the catalog is parsed.
	BlockIndex string `json:"block_index,omitempty"`
	// BlockIndexDigest is "sha256:<hex>" of the encoded index at BlockIndex.
	BlockIndexDigest string `json:"block_index_digest,omitempty"`
}

// Parse reads and validates a catalog. source names it in messages. Every
// problem is reported, in file order, in one *InvalidError (errors.Is
// ErrInvalid); unknown keys are ignored (Check reports them). The entries of
// [[pending_images]] follow those of [[images]], marked Pending.
func Parse(source string, data []byte) (*Catalog, error) {
	c, _, err := parse(source, data)
	return c, err
}

// catalogDoc is the part of a catalog that toml.Unmarshal decodes.
type catalogDoc struct {
	Version any              `toml:"version"`
	Images  []map[string]any `toml:"images"`
	Pending []map[string]any `toml:"pending_images"`
}

// parse is Parse, also returning the decoded document and the positions of
// its keys, for Check; they are nil when the TOML does not parse.
func parse(source string, data []byte) (*Catalog, *parsed, error) {
	var doc catalogDoc
	inv := &InvalidError{Source: source}
	add := func(line int, entry, format string, args ...any) {
		inv.Problems = append(inv.Problems, Problem{Source: source, Line: line, Entry: entry, Msg: fmt.Sprintf(format, args...)})
	}
	if err := toml.Unmarshal(data, &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			line, _ := de.Position()
			add(line, "", "%s: fix the TOML", strings.TrimPrefix(de.Error(), "toml: "))
		} else {
			add(0, "", "%s: fix the TOML", strings.TrimPrefix(err.Error(), "toml: "))
		}
		return nil, nil, inv
	}
	pos := positions(data)
	switch v := doc.Version.(type) {
	case nil:
		add(0, "", "version is missing: add version = 1 at the top")
	case int64:
		if v != 1 {
			add(pos.version, "", "version %d is not supported (bty reads version 1): use a catalog of version 1 or a newer bty", v)
		}
	default:
		add(pos.version, "", "version %v is not supported (bty reads version 1, an integer): write version = 1", tomlValue(v))
	}

	c := &Catalog{Source: source}
	seen := map[string]int{} // name -> line (or -1 when unknown)
	p := &parsed{doc: doc, pos: pos}
	for i, raw := range append(doc.Images, doc.Pending...) {
		table, k := "images", i
		if i >= len(doc.Images) {
			table, k = "pending_images", i-len(doc.Images)
		}
		var ep entryPos
		if k < len(pos.arrays[table]) {
			ep = pos.arrays[table][k]
		}
		p.entries = append(p.entries, parsedEntry{raw: raw, pos: ep, table: table})
		e, probs := parseEntry(raw, ep, source)
		e.From, e.Line = source, ep.line
		if table == "pending_images" {
			// The server lists it before it knows the digest; a sha256
			// here would contradict that, and is not trusted.
			e.SHA256, e.Pending = "", true
		}
		id := e.Name
		if id == "" {
			id = fmt.Sprintf("#%d", k+1)
		}
		p.entries[len(p.entries)-1].id = id
		for _, p := range probs {
			add(p.line, id, "%s", p.msg)
		}
		if e.Name != "" {
			if line, dup := seen[e.Name]; dup {
				where := "earlier"
				if line > 0 {
					where = fmt.Sprintf("on line %d", line)
				}
				add(ep.key("name"), id, "name is also used by the image %s: give each image its own name", where)
			} else {
				seen[e.Name] = ep.line
			}
		}
		if len(probs) == 0 {
			c.Images = append(c.Images, e)
		}
	}
	if len(inv.Problems) > 0 {
		return nil, p, inv
	}
	return c, p, nil
}

// parsed is a decoded catalog with where its keys are, for Check.
type parsed struct {
	doc     catalogDoc
	pos     docPos
	entries []parsedEntry // [[images]], then [[pending_images]]
}

type parsedEntry struct {
	raw   map[string]any
	pos   entryPos
	table string // "images" or "pending_images"
	id    string // the name, or "#N"
}

type lineMsg struct {
	line int
	msg  string
}

// parseEntry converts and checks one [[images]] table of the catalog read
// from source.
func parseEntry(raw map[string]any, ep entryPos, source string) (Entry, []lineMsg) {
	var e Entry
	var probs []lineMsg
	bad := func(key, format string, args ...any) {
		probs = append(probs, lineMsg{ep.key(key), fmt.Sprintf(format, args...)})
	}
	str := func(key string) (string, bool) {
		v, ok := raw[key]
		if !ok {
			return "", false
		}
		s, ok := v.(string)
		if !ok {
			bad(key, "%s must be a string, not %s: quote it", key, tomlValue(v))
			return "", false
		}
		return s, true
	}

	e.Name, _ = str("name")
	if _, present := raw["name"]; !present || (e.Name == "" && !isWrongType(raw["name"])) {
		bad("name", `name is missing: add name = "<file name>"`)
	}
	src, hasSrc := str("src")
	switch {
	case !hasSrc && !isWrongType(raw["src"]):
		bad("src", "src is missing: add the http(s):// or oras:// URL of the image")
	case hasSrc && strings.HasPrefix(strings.ToLower(src), "file://"):
		bad("src", "src %q: file:// is not allowed in a catalog: put local images in the image root", src)
	case hasSrc:
		e.Src = src
		ref, err := Ref(src)
		if err != nil {
			bad("src", "%s", err)
			break
		}
		e.Ref = ref
		if want, ok := str("ref"); ok && strings.ToLower(strings.TrimSpace(want)) != ref {
			bad("ref", "ref %s does not match src (its canonical ref is %s): fix or remove ref", want, ref)
		}
	}
	if s, ok := str("sha256"); ok {
		if sum, ok := NormalizeSHA256(s); !ok {
			bad("sha256", "sha256 %q is not 64 hex digits: fix or remove it", sum)
		} else {
			e.SHA256 = sum
		}
	}
	if s, ok := str("format"); ok {
		e.Format = strings.ToLower(strings.TrimSpace(s))
	}
	if v, ok := raw["size_bytes"]; ok {
		n, isInt := v.(int64)
		if !isInt || n < 0 {
			bad("size_bytes", "size_bytes %s is not a number of bytes: write a whole number or remove it", tomlValue(v))
		} else {
			e.Size = n
		}
	}
	e.Description, _ = str("description")
	e.Arch, _ = str("arch")
	bi, hasBI := str("block_index")
	bd, hasBD := str("block_index_digest")
	switch {
	case hasBI != hasBD:
		key, other := "block_index", "block_index_digest"
		if hasBD {
			key, other = other, key
		}
		bad(key, "%s without %s: give both, or neither", key, other)
	case hasBI:
		if loc, err := resolveRelative(source, bi); err != nil {
			bad("block_index", "block_index %q: %v", bi, err)
		} else {
			e.BlockIndex = loc
		}
		hx, prefixed := strings.CutPrefix(strings.ToLower(strings.TrimSpace(bd)), "sha256:")
		if hx, ok := NormalizeSHA256(hx); !ok || !prefixed {
			bad("block_index_digest", `block_index_digest %q is not "sha256:" and 64 hex digits: fix or remove it`, bd)
		} else {
			e.BlockIndexDigest = "sha256:" + hx
		}
	}
	return e, probs
}

// resolveRelative resolves ref, an http(s) URL or a reference relative to
// the catalog read from source (an http(s) URL or a local path).
func resolveRelative(source, ref string) (string, error) {
	ref = strings.TrimSpace(ref)
	u, err := url.Parse(ref)
	switch {
	case ref == "":
		return "", errors.New("is empty: give the index's URL, or its path relative to the catalog")
	case err != nil:
		return "", fmt.Errorf("is not a URL or a path: %w", err)
	case u.Scheme == "http" || u.Scheme == "https":
		return ref, nil
	case u.Scheme != "":
		return "", fmt.Errorf("scheme %s: give an http(s) URL, or a path relative to the catalog", u.Scheme)
	}
	switch scheme, _, _ := strings.Cut(source, "://"); {
	case strings.EqualFold(scheme, "http") || strings.EqualFold(scheme, "https"):
		base, err := url.Parse(source)
		if err != nil {
			return "", err
		}
		return base.ResolveReference(u).String(), nil
	case strings.Contains(source, "://"):
		return "", fmt.Errorf("a relative block_index needs a catalog read from a URL or a file, not from %s: give an http(s) URL", scheme)
	case filepath.IsAbs(ref):
		return ref, nil
	}
	return filepath.Join(filepath.Dir(source), filepath.FromSlash(ref)), nil
}

func isWrongType(v any) bool {
	_, isString := v.(string)
	return v != nil && !isString
}

// tomlValue shows a decoded TOML value the way it was probably written.
func tomlValue(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("%q", v)
	case map[string]any:
		return "a table"
	case []any:
		return "an array"
	}
	return fmt.Sprint(v)
}
