package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// MaxCatalogSize caps a catalog, wherever it comes from (docs/catalog.md).
const MaxCatalogSize = 4 << 20

// DefaultCatalogSrc is the catalog the wizard offers when BTY_DEFAULT_CATALOG
// is unset.
const DefaultCatalogSrc = "oras://ghcr.io/bty-images/catalog:v1"

// DefaultCatalog is the catalog the wizard offers: $BTY_DEFAULT_CATALOG, else
// DefaultCatalogSrc; "" when BTY_DEFAULT_CATALOG is "none".
func DefaultCatalog(getenv func(string) string) string {
	switch v := strings.TrimSpace(getenv("BTY_DEFAULT_CATALOG")); v {
	case "":
		return DefaultCatalogSrc
	case "none":
		return ""
	default:
		return v
	}
}

// defaultLoadTimeout bounds loading one catalog, so an offline machine gets an
// answer instead of a hang.
const defaultLoadTimeout = 20 * time.Second

// Load reads and parses the catalog at src: a local path, an http(s):// URL, or
// an oras:// artifact. Parse errors are *InvalidError (ErrInvalid); a source
// that cannot be read is category.ErrSource (ErrNotFound when it does not exist).
func (r *Resolver) Load(ctx context.Context, src string) (*Catalog, error) {
	data, err := r.fetchCatalog(ctx, src)
	if err != nil {
		return nil, err
	}
	return Parse(src, data)
}

func (r *Resolver) fetchCatalog(ctx context.Context, src string) ([]byte, error) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = defaultLoadTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var data []byte
	var err error
	switch scheme, _, _ := strings.Cut(src, "://"); {
	case src == "":
		return nil, &sourceError{err: fmt.Errorf("catalog source is empty: give a path, an http(s):// URL or an oras:// reference"), permanent: true}
	case strings.EqualFold(scheme, "http") || strings.EqualFold(scheme, "https"):
		data, err = r.fetchHTTPCatalog(ctx, src)
	case strings.EqualFold(scheme, "oras"):
		data, err = r.registry().fetchCatalog(ctx, src, MaxCatalogSize)
	case strings.Contains(src, "://"):
		return nil, &sourceError{err: fmt.Errorf("catalog %s: scheme %s:// is not supported: give a path, an http(s):// URL or an oras:// reference", src, scheme), permanent: true}
	default:
		data, err = readCatalogFile(src)
	}
	if err != nil && ctx.Err() == context.DeadlineExceeded && errors.Is(err, context.DeadlineExceeded) {
		return nil, &sourceError{err: fmt.Errorf("catalog %s: no answer within %s (offline?): check the network, or use a catalog file", src, timeout)}
	}
	return data, err
}

func readCatalogFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &sourceError{err: fmt.Errorf("catalog %w", fileErr(path, err)), permanent: true}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxCatalogSize+1))
	if err != nil {
		return nil, &sourceError{err: fmt.Errorf("catalog %s: %w", path, err), permanent: true}
	}
	if len(data) > MaxCatalogSize {
		return nil, &sourceError{err: fmt.Errorf("catalog %s is larger than %d MiB: not a catalog", path, MaxCatalogSize>>20), permanent: true}
	}
	return data, nil
}

func (r *Resolver) fetchHTTPCatalog(ctx context.Context, src string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return nil, &sourceError{err: fmt.Errorf("catalog %s: %w", src, err), permanent: true}
	}
	req.Header.Set("Accept", "application/toml, text/plain;q=0.9, */*;q=0.1")
	resp, err := r.client().Do(req)
	if err != nil {
		return nil, &sourceError{err: netErr("catalog "+src, err)}
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return nil, &sourceError{err: fmt.Errorf("catalog %s: %s: %w: check the URL", src, resp.Status, ErrNotFound), permanent: true}
	default:
		return nil, &sourceError{err: fmt.Errorf("catalog %s: %s", src, resp.Status), permanent: resp.StatusCode < 500}
	}
	if resp.ContentLength > MaxCatalogSize {
		return nil, &sourceError{err: fmt.Errorf("catalog %s is %d bytes, more than %d MiB: not a catalog", src, resp.ContentLength, MaxCatalogSize>>20), permanent: true}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxCatalogSize+1))
	if err != nil {
		return nil, &sourceError{err: netErr("catalog "+src, err)}
	}
	if len(data) > MaxCatalogSize {
		return nil, &sourceError{err: fmt.Errorf("catalog %s is larger than %d MiB: not a catalog", src, MaxCatalogSize>>20), permanent: true}
	}
	return data, nil
}

// netErr turns a transport failure into a message that says what to do.
func netErr(subject string, err error) error {
	var dns *net.DNSError
	var op *net.OpError
	switch {
	case errors.Is(err, context.Canceled):
		return err
	case errors.As(err, &dns):
		return fmt.Errorf("%s: cannot resolve %s (offline?): check the network and the host name: %w", subject, dns.Name, err)
	case errors.As(err, &op) && op.Op == "dial":
		return fmt.Errorf("%s: cannot connect (offline, or nothing listening?): check the network and the URL: %w", subject, err)
	}
	var ue *url.Error
	if errors.As(err, &ue) && ue.Timeout() {
		return fmt.Errorf("%s: timed out (offline?): check the network: %w", subject, err)
	}
	return fmt.Errorf("%s: %w", subject, err)
}

// isNotExist reports a missing file or directory.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
