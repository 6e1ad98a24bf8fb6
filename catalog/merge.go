package catalog

// Merge joins lists of entries into one row per ref: the first row listed wins,
// whichever list it came from (docs/catalog.md, canonical refs). Pass the image root first,
// then the catalogs in the order given.
func Merge(lists ...[]Entry) []Entry {
	seen := map[string]bool{}
	var out []Entry
	for _, l := range lists {
		for _, e := range l {
			if e.Ref != "" && seen[e.Ref] {
				continue
			}
			seen[e.Ref] = true
			out = append(out, e)
		}
	}
	return out
}

// Find returns the first entry named name.
func Find(entries []Entry, name string) (Entry, bool) {
	for _, e := range entries {
		if e.Name == name {
			return e, true
		}
	}
	return Entry{}, false
}
