package media

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// tree is a file tree to be written as an initramfs: paths are relative to the
// root, slash-separated, without a leading "/". Parents are added as needed.
type tree struct {
	entries map[string]*treeEntry
}

type treeEntry struct {
	mode  fs.FileMode // type bits and permissions
	data  []byte      // file contents, or a symlink's target
	major uint32      // device numbers of a character device
	minor uint32
}

func newTree() *tree { return &tree{entries: map[string]*treeEntry{}} }

// cleanPath turns "/a//b/" into "a/b".
func cleanPath(p string) string {
	return strings.TrimPrefix(path.Clean("/"+p), "/")
}

func (t *tree) add(p string, e *treeEntry) {
	p = cleanPath(p)
	if p == "" {
		return
	}
	for d := path.Dir(p); d != "."; d = path.Dir(d) {
		if _, ok := t.entries[d]; !ok {
			t.entries[d] = &treeEntry{mode: fs.ModeDir | 0o755}
		}
	}
	t.entries[p] = e
}

func (t *tree) dir(p string) { t.add(p, &treeEntry{mode: fs.ModeDir | 0o755}) }
func (t *tree) file(p string, perm fs.FileMode, data []byte) {
	t.add(p, &treeEntry{mode: perm & fs.ModePerm, data: data})
}
func (t *tree) symlink(p, target string) {
	t.add(p, &treeEntry{mode: fs.ModeSymlink | 0o777, data: []byte(target)})
}
func (t *tree) charDev(p string, perm fs.FileMode, major, minor uint32) {
	t.add(p, &treeEntry{mode: fs.ModeDevice | fs.ModeCharDevice | perm&fs.ModePerm, major: major, minor: minor})
}

// Unix mode bits of the cpio header (they are not Go's fs.FileMode bits).
const (
	sIFDIR = 0o040000
	sIFREG = 0o100000
	sIFLNK = 0o120000
	sIFCHR = 0o020000
)

func unixMode(m fs.FileMode) uint32 {
	perm := uint32(m.Perm())
	switch {
	case m.IsDir():
		return sIFDIR | perm
	case m&fs.ModeSymlink != 0:
		return sIFLNK | perm
	case m&fs.ModeCharDevice != 0:
		return sIFCHR | perm
	}
	return sIFREG | perm
}

// writeCPIO writes the tree as a cpio archive in the "newc" (SVR4, no CRC)
// format that the kernel unpacks into its root file system. Entries are sorted
// by path, so a directory precedes what it holds; inode numbers count up from
// 1 in that order; owner, group and mtime are 0. The same tree always gives the
// same bytes.
func (t *tree) writeCPIO(w io.Writer) error {
	bw := bufio.NewWriter(w)
	paths := make([]string, 0, len(t.entries))
	for p := range t.entries {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	var off int64
	write := func(b []byte) {
		n, _ := bw.Write(b) // bufio keeps the first error; Flush returns it
		off += int64(n)
	}
	pad := func() {
		if r := off % 4; r != 0 {
			write(make([]byte, 4-r))
		}
	}
	header := func(ino int, name string, mode uint32, nlink int, size int, major, minor uint32) {
		// c_magic, then 13 fields of 8 hex digits: ino, mode, uid, gid, nlink,
		// mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize
		// (with the NUL), check.
		write(fmt.Appendf(nil, "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
			ino, mode, 0, 0, nlink, 0, size, 0, 0, major, minor, len(name)+1, 0))
		write([]byte(name))
		write([]byte{0})
		pad()
	}
	for i, p := range paths {
		e := t.entries[p]
		nlink := 1
		if e.mode.IsDir() {
			nlink = 2
		}
		header(i+1, p, unixMode(e.mode), nlink, len(e.data), e.major, e.minor)
		write(e.data)
		pad()
	}
	header(0, "TRAILER!!!", 0, 1, 0, 0, 0)
	return bw.Flush()
}
