package disks

import (
	"github.com/google/go-cmp/cmp/cmpopts"
	"path/filepath"
	"testing"
)

// fixture returns the Roots of a tree in testdata (see testdata/README.md).
func fixture(name string) Roots {
	root := filepath.Join("testdata", name)
	return Roots{
		Sys:  filepath.Join(root, "sys"),
		Proc: filepath.Join(root, "proc"),
		Dev:  filepath.Join(root, "dev"),
		Run:  filepath.Join(root, "run"),
	}
}

// listFixture lists the disks of a fixture by name.
func listFixture(t *testing.T, name string) map[string]Disk {
	t.Helper()
	ds, err := List(fixture(name))
	if err != nil {
		t.Fatalf("List(%s) = %v", name, err)
	}
	m := map[string]Disk{}
	for _, d := range ds {
		m[d.Name] = d
	}
	return m
}

// cmpSorted compares string slices as sets.
var cmpSorted = cmpopts.SortSlices(func(a, b string) bool { return a < b })
