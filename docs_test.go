package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// mdRef matches a reference to a Markdown file: a path or a name that ends
// in .md.
var mdRef = regexp.MustCompile(`[A-Za-z0-9_./-]*[A-Za-z0-9_-]\.md\b`)

// TestDocsExist: every Markdown file that the README, docs/ or a Go comment
// names is in the repository (beside the naming file, or from its root), so
// a reader never follows a reference out of it.
func TestDocsExist(t *testing.T) {
	var files []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && p != "." || d.Name() == "testdata" || d.Name() == "bench") {
			return filepath.SkipDir
		}
		if p == "README.md" || strings.HasPrefix(p, "docs/") && strings.HasSuffix(p, ".md") || strings.HasSuffix(p, ".go") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, ref := range mdRef.FindAllString(string(b), -1) {
			_, errHere := os.Stat(filepath.Join(filepath.Dir(f), ref))
			_, errRoot := os.Stat(ref)
			if errHere != nil && errRoot != nil {
				t.Errorf("%s names %s, which is not in the repository", f, ref)
			}
		}
	}
}
