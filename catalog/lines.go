package catalog

import "github.com/pelletier/go-toml/v2/unstable"

// docPos holds where things are in a catalog's text, for messages: toml.Unmarshal
// gives values without lines, so a second pass over the syntax tree finds them.
type docPos struct {
	version int
	// arrays are the entries of each array of tables at the top level
	// ("images", "pending_images", or a misspelt one), in the order
	// toml.Unmarshal returns them.
	arrays map[string][]entryPos
	top    []topKey // the top-level keys and tables, in file order
}

// topKey is a key or table at the top level of the document.
type topKey struct {
	name  string
	line  int
	table string // "" for key = value, "[]" for [name], "[[]]" for [[name]]
}

type entryPos struct {
	line int            // the [[images]] header, or the inline table's brace
	keys map[string]int // key -> line of "key = value"
}

// key is the line of key in the entry, else the entry's own line.
func (e entryPos) key(k string) int {
	if l, ok := e.keys[k]; ok {
		return l
	}
	return e.line
}

// positions walks the top-level expressions of a catalog. It handles both
// spellings of an array of tables: [[images]] tables and images = [{...}, ...].
// On a syntax error it returns what it found so far.
func positions(data []byte) docPos {
	d := docPos{arrays: map[string][]entryPos{}}
	var p unstable.Parser
	p.Reset(data)
	line := func(r unstable.Range) int { return p.Shape(r).Start.Line }
	seen := map[string]bool{} // top-level names already in d.top
	addTop := func(k topKey) {
		if !seen[k.name] {
			seen[k.name] = true
			d.top = append(d.top, k)
		}
	}
	var cur *entryPos // the [[name]] table being filled, nil elsewhere
	inTable := false  // inside some [table] or [[table]]
	for p.NextExpression() {
		n := p.Expression()
		switch n.Kind {
		case unstable.ArrayTable, unstable.Table:
			keys := keyParts(n)
			inTable = true
			cur = nil
			it := n.Key()
			it.Next()
			l := line(it.Node().Raw)
			kind := "[]"
			if n.Kind == unstable.ArrayTable {
				kind = "[[]]"
			}
			if len(keys) >= 1 {
				addTop(topKey{keys[0], l, kind})
			}
			if n.Kind == unstable.ArrayTable && len(keys) == 1 {
				d.arrays[keys[0]] = append(d.arrays[keys[0]], entryPos{line: l, keys: map[string]int{}})
				cur = &d.arrays[keys[0]][len(d.arrays[keys[0]])-1]
			}
		case unstable.KeyValue:
			keys := keyParts(n)
			switch {
			case cur != nil && len(keys) >= 1:
				if _, dup := cur.keys[keys[0]]; !dup {
					cur.keys[keys[0]] = line(n.Raw)
				}
			case inTable || len(keys) == 0:
			case len(keys) == 1 && keys[0] == "version":
				d.version = line(n.Raw)
				addTop(topKey{name: "version", line: d.version})
			case len(keys) == 1 && n.Value().Kind == unstable.Array:
				addTop(topKey{name: keys[0], line: line(n.Raw)})
				it := n.Value().Children()
				for it.Next() {
					t := it.Node()
					if t.Kind != unstable.InlineTable {
						continue
					}
					e := entryPos{line: line(t.Raw), keys: map[string]int{}}
					kv := t.Children()
					for kv.Next() {
						if kv.Node().Kind != unstable.KeyValue {
							continue
						}
						if k := keyParts(kv.Node()); len(k) >= 1 {
							e.keys[k[0]] = line(kv.Node().Raw)
						}
					}
					d.arrays[keys[0]] = append(d.arrays[keys[0]], e)
				}
			default:
				addTop(topKey{name: keys[0], line: line(n.Raw)})
			}
		}
	}
	return d
}

func keyParts(n *unstable.Node) []string {
	var out []string
	it := n.Key()
	for it.Next() {
		out = append(out, string(it.Node().Data))
	}
	return out
}
