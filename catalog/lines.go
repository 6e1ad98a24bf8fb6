package catalog

import "github.com/pelletier/go-toml/v2/unstable"

// docPos holds where things are in a catalog's text, for messages: toml.Unmarshal
// gives values without lines, so a second pass over the syntax tree finds them.
type docPos struct {
	version int
	entries []entryPos // in the order toml.Unmarshal returns the images
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
// spellings of the image list: [[images]] tables and images = [{...}, ...].
// On a syntax error it returns what it found so far.
func positions(data []byte) docPos {
	var d docPos
	var p unstable.Parser
	p.Reset(data)
	line := func(r unstable.Range) int { return p.Shape(r).Start.Line }
	var cur *entryPos // the [[images]] table being filled, nil elsewhere
	inTable := false  // inside some [table] or [[table]]
	for p.NextExpression() {
		n := p.Expression()
		switch n.Kind {
		case unstable.ArrayTable, unstable.Table:
			keys := keyParts(n)
			inTable = true
			cur = nil
			if n.Kind == unstable.ArrayTable && len(keys) == 1 && keys[0] == "images" {
				it := n.Key()
				it.Next()
				d.entries = append(d.entries, entryPos{line: line(it.Node().Raw), keys: map[string]int{}})
				cur = &d.entries[len(d.entries)-1]
			}
		case unstable.KeyValue:
			keys := keyParts(n)
			switch {
			case cur != nil && len(keys) >= 1:
				if _, dup := cur.keys[keys[0]]; !dup {
					cur.keys[keys[0]] = line(n.Raw)
				}
			case !inTable && len(keys) == 1 && keys[0] == "version":
				d.version = line(n.Raw)
			case !inTable && len(keys) == 1 && keys[0] == "images" && n.Value().Kind == unstable.Array:
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
					d.entries = append(d.entries, e)
				}
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
