package catalog

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"bty/format"
)

// Check is Parse for bty catalog check: besides the problems that make a
// catalog invalid it returns warnings about what is valid but probably a
// mistake, in line order. Loading a catalog to flash from ignores all of
// these (docs/catalog.md: unknown keys are ignored).
//
//   - an unknown key or table, with the known one it is probably meant to
//     be ([[image]] for [[images]], sha265 for sha256);
//   - an image without sha256 (other than an oras:// one, whose layer digest
//     is always checked): it would be flashed without a digest check;
//   - an image whose server is still computing its sha256 ([[pending_images]]);
//   - a format value bty does not know.
func Check(source string, data []byte) (*Catalog, []Problem, error) {
	c, p, err := parse(source, data)
	if p == nil {
		return c, nil, err
	}
	var warns []Problem
	warn := func(line int, entry, format string, args ...any) {
		warns = append(warns, Problem{Source: source, Line: line, Entry: entry, Msg: fmt.Sprintf(format, args...)})
	}
	for _, k := range p.pos.top {
		if slices.Contains(topKeys, k.name) {
			continue
		}
		near := nearest(k.name, topKeys)
		switch {
		case k.table != "" && (near == "images" || near == "pending_images"):
			warn(k.line, "", "unknown table %s is ignored: did you mean [[%s]]?", tableName(k), near)
		case k.table != "":
			warn(k.line, "", "unknown table %s is ignored%s", tableName(k), didYouMean(near))
		default:
			warn(k.line, "", "unknown key %q is ignored%s", k.name, didYouMean(near))
		}
	}
	for _, e := range p.entries {
		for _, key := range slices.Sorted(maps.Keys(e.raw)) {
			if !slices.Contains(entryKeys, key) {
				warn(e.pos.key(key), e.id, "unknown key %q is ignored%s", key, didYouMean(nearest(key, entryKeys)))
			}
		}
		_, hasSum := e.raw["sha256"]
		src, _ := e.raw["src"].(string)
		isOras := strings.HasPrefix(strings.ToLower(src), "oras://")
		switch {
		case e.table == "pending_images":
			warn(e.pos.line, e.id, "the server is still computing its sha256: bty lists it but does not flash it until the catalog lists it under [[images]]")
		case !hasSum && !isOras && src != "":
			warn(e.pos.line, e.id, `no sha256: bty would flash it without checking its digest (add sha256 = "<64 hex digits>")`)
		}
		if f, ok := e.raw["format"].(string); ok && !knownFormat(f) {
			values := format.CatalogValues()
			hint := strings.Join(values, ", ")
			if near := nearest(f, values); near != "" {
				hint = fmt.Sprintf("did you mean %q?", near)
			}
			warn(e.pos.key("format"), e.id, "format %q is not one bty knows (%s): the image's bytes decide its format", f, hint)
		}
	}
	slices.SortStableFunc(warns, func(a, b Problem) int { return cmp.Compare(a.Line, b.Line) })
	return c, warns, err
}

// Check loads the catalog at src as Load does, and returns Check's warnings
// too.
func (r *Resolver) Check(ctx context.Context, src string) (*Catalog, []Problem, error) {
	data, err := r.fetchCatalog(ctx, src)
	if err != nil {
		return nil, nil, err
	}
	return Check(src, data)
}

// The keys a catalog of version 1 has (docs/catalog.md, and the additive
// [[pending_images]] of bty serve).
var (
	topKeys   = []string{"version", "images", "pending_images"}
	entryKeys = []string{"name", "src", "sha256", "format", "size_bytes", "description", "arch", "ref", "block_index", "block_index_digest"}
)

// keyAliases are words people write for a known key.
var keyAliases = map[string]string{
	"url": "src", "source": "src", "uri": "src", "link": "src",
	"digest": "sha256", "checksum": "sha256", "hash": "sha256", "sha": "sha256", "sha256sum": "sha256",
	"size": "size_bytes", "bytes": "size_bytes", "length": "size_bytes",
	"desc": "description", "title": "name", "image": "images", "pending": "pending_images",
}

func tableName(k topKey) string {
	if k.table == "[]" {
		return "[" + k.name + "]"
	}
	return "[[" + k.name + "]]"
}

func didYouMean(near string) string {
	if near == "" {
		return " (bty does not read it)"
	}
	return fmt.Sprintf(": did you mean %q?", near)
}

// nearest returns the known word that word is probably a misspelling of, or
// "": the same word in another case or with - for _, a common synonym, a
// prefix of it, or one at most two edits away (one for short words).
func nearest(word string, known []string) string {
	w := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(word)), "-", "_")
	if a, ok := keyAliases[w]; ok && slices.Contains(known, a) {
		return a
	}
	best, bestD := "", 3
	if len(w) <= 3 {
		bestD = 2
	}
	for _, k := range known {
		if w == k {
			return k
		}
		if len(w) >= 3 && strings.HasPrefix(k, w) {
			return k
		}
		if d := editDistance(w, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and swaps of two neighbours each cost one
// (sha265 is one swap from sha256).
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// knownFormat reports whether f is a value of the format field (WIRE: img,
// img.gz, img.xz, img.zst, img.bz2, qcow2), in any case.
func knownFormat(f string) bool {
	v := strings.ToLower(strings.TrimSpace(f))
	fm := format.Parse(v)
	return fm != "" && fm.Catalog() == v
}
