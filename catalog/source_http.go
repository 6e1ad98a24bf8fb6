package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// HTTPSource streams an image from an http(s) URL. Each Open after the first asks
// for the rest with Range and If-Range, so a resumed download can never splice
// two versions of the file: when the ETag (or Last-Modified) differs from the
// first response's, Open fails with ErrChanged.
type HTTPSource struct {
	URL string
	// Client does the requests; nil means NewHTTPClient().
	Client *http.Client
	// Stall aborts a response body that delivers nothing for this long, so the
	// engine can resume; zero means 30 s.
	Stall time.Duration

	mu        sync.Mutex
	validator string // ETag, else Last-Modified, of the first response
	answered  bool   // the server has answered once
}

// NewHTTPClient returns a client with connect, TLS and response-header timeouts
// and no overall deadline (an image download may take an hour).
func NewHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
	}}
}

func (s *HTTPSource) Name() string { return s.URL }

// Validator is the ETag, else Last-Modified, of the first response; "" before
// it or when the server sent neither. A cache keys a version of the URL by it.
func (s *HTTPSource) Validator() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.validator
}

// Open requests the bytes from off on. The size is the whole resource's.
func (s *HTTPSource) Open(ctx context.Context, off int64) (io.ReadCloser, int64, error) {
	client := s.Client
	if client == nil {
		client = NewHTTPClient()
	}
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	if err != nil {
		cancel()
		return nil, -1, &sourceError{err: fmt.Errorf("%s: %w", s.URL, err), permanent: true}
	}
	req.Header.Set("Accept-Encoding", "identity")
	s.mu.Lock()
	validator := s.validator
	s.mu.Unlock()
	if off > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", off))
		if validator != "" && !strings.HasPrefix(validator, "W/") {
			req.Header.Set("If-Range", validator)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		return nil, -1, s.doErr(err)
	}
	s.mu.Lock()
	s.answered = true
	s.mu.Unlock()
	body, size, err := s.check(resp, off, validator)
	if err != nil {
		resp.Body.Close()
		cancel()
		return nil, -1, err
	}
	return newStallReader(body, cancel, s.stall()), size, nil
}

// doErr is a request that got no response. The URL is named once (the
// client's error repeats it). A server that refuses the connection, or a host
// name that does not resolve, before the server ever answered is a mistake in
// the URL or a server that is down: retrying for seconds would only delay the
// message. Once it has answered, the same errors are a restart or a network
// blip, and the flash resumes after them.
func (s *HTTPSource) doErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	s.mu.Lock()
	answered := s.answered
	s.mu.Unlock()
	var dns *net.DNSError
	refused := errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &dns) && dns.IsNotFound
	return &sourceError{err: netErr("GET "+s.URL, err), permanent: refused && !answered}
}

func (s *HTTPSource) stall() time.Duration {
	if s.Stall > 0 {
		return s.Stall
	}
	return 30 * time.Second
}

// check validates a response to a request for the bytes from off on and returns
// the body positioned at off and the resource's total size (-1 unknown).
func (s *HTTPSource) check(resp *http.Response, off int64, validator string) (io.ReadCloser, int64, error) {
	got := resp.Header.Get("ETag")
	if got == "" {
		got = resp.Header.Get("Last-Modified")
	}
	switch {
	case resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusPartialContent:
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return nil, -1, &sourceError{err: fmt.Errorf("GET %s: %s: %w: check the URL", s.URL, resp.Status, ErrNotFound), permanent: true}
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, -1, &sourceError{err: fmt.Errorf("GET %s: %s: access denied: check the URL and credentials", s.URL, resp.Status), permanent: true}
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return nil, -1, &sourceError{err: fmt.Errorf("GET %s: %s", s.URL, resp.Status)}
	default:
		return nil, -1, &sourceError{err: fmt.Errorf("GET %s: unexpected %s", s.URL, resp.Status), permanent: true}
	}
	if validator != "" && got != validator {
		return nil, -1, &sourceError{err: fmt.Errorf("GET %s: %w (validator was %s, now %q): start the flash again", s.URL, ErrChanged, validator, got), permanent: true}
	}
	if off == 0 {
		s.mu.Lock()
		s.validator = got
		s.mu.Unlock()
	}
	if resp.StatusCode == http.StatusOK {
		// A server that ignores Range sends everything again: skip what we have.
		if off > 0 {
			if _, err := io.CopyN(io.Discard, resp.Body, off); err != nil {
				return nil, -1, &sourceError{err: fmt.Errorf("GET %s: skipping to byte %d: %w", s.URL, off, err)}
			}
		}
		return resp.Body, resp.ContentLength, nil
	}
	start, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
	if !ok || start != off {
		return nil, -1, &sourceError{err: fmt.Errorf("GET %s: asked for bytes from %d, got Content-Range %q", s.URL, off, resp.Header.Get("Content-Range")), permanent: true}
	}
	return resp.Body, total, nil
}

// parseContentRange parses "bytes START-END/TOTAL" (TOTAL may be "*": -1).
func parseContentRange(v string) (start, total int64, ok bool) {
	rest, found := strings.CutPrefix(v, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	first, _, found2 := strings.Cut(rng, "-")
	if !found || !found2 {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(first, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil {
			return 0, 0, false
		}
	}
	return start, total, true
}

// stallReader cancels the request when a Read waits longer than the stall
// timeout, so a connection that went quiet fails and the engine resumes.
type stallReader struct {
	rc     io.ReadCloser
	cancel context.CancelFunc
	d      time.Duration
	timer  *time.Timer
}

func newStallReader(rc io.ReadCloser, cancel context.CancelFunc, d time.Duration) *stallReader {
	return &stallReader{rc: rc, cancel: cancel, d: d, timer: time.AfterFunc(d, cancel)}
}

func (r *stallReader) Read(p []byte) (int, error) {
	r.timer.Reset(r.d)
	n, err := r.rc.Read(p)
	return n, err
}

func (r *stallReader) Close() error {
	r.timer.Stop()
	r.cancel()
	return r.rc.Close()
}
