package catalog

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
)

// What the counters count: a whole image (GET /images/<name>, or a fleet
// server's cached copy), one block of a block store, one block index.
const (
	ServedImage = "image"
	ServedBlock = "block"
	ServedIndex = "index"
)

var servedKinds = [...]string{ServedImage, ServedBlock, ServedIndex}

// served counts the successful (2xx) GET responses of each kind and the body
// bytes they carried, since the process started: the bytes a client
// received, counted by the server (docs/delta.md compares them with the
// client's count).
type served struct {
	requests, bytes [len(servedKinds)]atomic.Int64
}

// servedKind is what path serves, "" for the rest (the catalog, /healthz).
func servedKind(path string) string {
	switch {
	case strings.HasPrefix(path, "/images/"):
		return ServedImage
	case strings.HasPrefix(path, "/blocks/sha256/"):
		return ServedBlock
	case strings.HasPrefix(path, "/blocks/"):
		return ServedIndex
	}
	return ""
}

// Served counts a successful response of kind (ServedImage, ServedBlock,
// ServedIndex) that carried n body bytes. The server counts its own; the
// fleet server counts the images it serves from its cache with it.
func (s *Server) Served(kind string, n int64) {
	for i, k := range servedKinds {
		if k == kind {
			s.served.requests[i].Add(1)
			s.served.bytes[i].Add(n)
		}
	}
}

// countServed counts the response lw gave to r, if it was a 2xx to a GET
// of an image, block or index.
func (s *Server) countServed(r *http.Request, lw *logWriter) {
	kind := servedKind(r.URL.Path)
	if kind == "" || r.Method != http.MethodGet || (lw.status != 0 && lw.status/100 != 2) {
		return
	}
	s.Served(kind, lw.n)
}

// WriteMetrics writes the counters in Prometheus' text format: the lines
// of GET /metrics that are the catalog's.
func (s *Server) WriteMetrics(w io.Writer) {
	for _, c := range []struct {
		name, help string
		v          *[len(servedKinds)]atomic.Int64
	}{
		{"bty_served_bytes_total", "Body bytes of the images, blocks and block indexes served (2xx answers to GET).", &s.served.bytes},
		{"bty_served_requests_total", "Images, blocks and block indexes served (2xx answers to GET).", &s.served.requests},
	} {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", c.name, c.help, c.name)
		for i, k := range servedKinds {
			fmt.Fprintf(w, "%s{kind=%q} %d\n", c.name, k, c.v[i].Load())
		}
	}
}
