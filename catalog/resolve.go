package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Source is what the flash engine reads (flash.Source, declared there).
type Source interface {
	Name() string
	Open(ctx context.Context, off int64) (io.ReadCloser, int64, error)
}

// Resolved is an IMG argument turned into something to flash.
type Resolved struct {
	Name   string // display name (catalog entry name or file name)
	Source Source
	SHA256 string // expected digest of the source bytes, "" when unknown
	Format string // format hint from the catalog, "" when none
	Size   int64  // expected size of the source bytes, 0 when unknown
}

// Resolve turns IMG (a local path or an http(s) URL) into a Resolved image. A
// local file's sidecar <file>.sha256 gives the expected digest.
func Resolve(ctx context.Context, spec string) (Resolved, error) {
	switch {
	case strings.HasPrefix(spec, "http://") || strings.HasPrefix(spec, "https://"):
		return Resolved{Name: spec, Source: &HTTPSource{URL: spec}}, nil
	case strings.Contains(spec, "://"):
		return Resolved{}, fmt.Errorf("%s: unsupported scheme: use a local path or an http(s):// URL", spec)
	}
	fi, err := os.Stat(spec)
	if err != nil {
		return Resolved{}, &sourceError{err: fileErr(spec, err), permanent: true}
	}
	if fi.IsDir() {
		return Resolved{}, fmt.Errorf("%s is a directory: name an image file", spec)
	}
	sum, err := readSidecar(spec + ".sha256")
	if err != nil {
		return Resolved{}, err
	}
	return Resolved{Name: spec, Source: FileSource{Path: spec}, SHA256: sum}, nil
}

// readSidecar reads a sha256 sidecar: its first token must be 64 hex digits. A
// missing sidecar is not an error.
func readSidecar(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 || !isHex64(strings.ToLower(fields[0])) {
		return "", fmt.Errorf("%s: %w: the first word must be a sha256 of 64 hex digits", path, ErrInvalidSidecar)
	}
	return strings.ToLower(fields[0]), nil
}

// ErrInvalidSidecar: a .sha256 file that holds no digest. Maps to exit code 2.
var ErrInvalidSidecar = errors.New("invalid sha256 sidecar")

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}
