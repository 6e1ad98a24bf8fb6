package catalog

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"bty/format"
)

// DefaultImageRootDir is the image root when $BTY_IMAGE_ROOT is unset; the USB
// stick's BTY_IMAGES partition is mounted there.
const DefaultImageRootDir = "/var/lib/bty/images"

// DefaultImageRoot is $BTY_IMAGE_ROOT, else DefaultImageRootDir.
func DefaultImageRoot(getenv func(string) string) string {
	if d := getenv("BTY_IMAGE_ROOT"); d != "" {
		return d
	}
	return DefaultImageRootDir
}

// ScanRoot lists the images directly in dir (docs/catalog.md, the image root): regular files
// whose first bytes are a recognised format, with the digest of a <file>.sha256
// sidecar. Hidden files (and macOS ._* files), symlinks, sidecars and anything
// else are skipped. Entries are named by their file name and sorted by it.
// A missing dir is an error that wraps fs.ErrNotExist.
func ScanRoot(dir string) ([]Entry, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("image root %s: %w", dir, err)
	}
	des, err := os.ReadDir(abs)
	if err != nil {
		return nil, fmt.Errorf("image root %s: %w", dir, err)
	}
	var out []Entry
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, ".") || isSidecar(name) || !de.Type().IsRegular() {
			continue
		}
		e, ok := scanFile(abs, name)
		if ok {
			e.From = dir
			out = append(out, e)
		}
	}
	return out, nil
}

// scanFile sniffs one candidate file of the image root.
func scanFile(dir, name string) (Entry, bool) {
	path := filepath.Join(dir, name)
	f, size, err := sniffFile(path)
	if err != nil || f == "" {
		return Entry{}, false
	}
	e := Entry{
		Name:   name,
		Src:    path,
		Format: f.Catalog(),
		Size:   size,
		Ref:    hashString("file://" + path),
	}
	if hint := format.FromName(name); hint != "" && hint != f {
		e.Note = fmt.Sprintf("the name says %s but the bytes are %s", hint, f)
	}
	sum, err := readSidecar(path + ".sha256")
	switch {
	case err != nil:
		e.Note = joinNote(e.Note, fmt.Sprintf("%s.sha256 holds no sha256: fix or remove it", name))
	default:
		e.SHA256 = sum
	}
	return e, true
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// sniffFile opens path without following a symlink (the directory listing may
// be stale) and sniffs its format. It returns the format ("" when not an image)
// and the size.
func sniffFile(path string) (format.Format, int64, error) {
	f, err := openNoFollow(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	if !fi.Mode().IsRegular() {
		return "", 0, &fs.PathError{Op: "sniff", Path: path, Err: errors.New("not a regular file")}
	}
	head := make([]byte, sniffHead)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", 0, err
	}
	sniffed := sniffFormat(head[:n])
	if sniffed == "" && n > 0 && format.FromName(path) == format.Raw {
		// A raw image need not start with a partition table (a file system
		// image, a blank disk): trust the .img/.raw/.iso suffix.
		sniffed = format.Raw
	}
	return sniffed, fi.Size(), nil
}
