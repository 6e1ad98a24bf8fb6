package catalog

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"

	"bty/category"
)

// TestHTTPSourceRefused: a refused connection before the server ever answered
// is permanent (the engine does not retry it for seconds) and names the URL
// once; after an answer, the same refusal is a restart, and retried.
func TestHTTPSourceRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/disk.img"
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("disk")) })}
	ln.Close()

	hs := &HTTPSource{URL: url}
	_, _, err = hs.Open(context.Background(), 0)
	if err == nil || !isPermanentErr(err) || !errors.Is(err, category.ErrSource) || strings.Count(err.Error(), url) != 1 || !strings.Contains(err.Error(), "check the network and the URL") {
		t.Errorf("Open(refused, never answered) = %v (permanent %v), want a permanent source error naming %s once and what to check", err, isPermanentErr(err), url)
	}

	// The server comes up on that address, answers, and goes away again.
	ln, err = net.Listen("tcp", strings.TrimPrefix(strings.TrimSuffix(url, "/disk.img"), "http://"))
	if err != nil {
		t.Skipf("the port was taken in between: %v", err)
	}
	go srv.Serve(ln)
	rc, _, err := hs.Open(context.Background(), 0)
	if err != nil {
		t.Fatalf("Open(answering) = %v", err)
	}
	rc.Close()
	srv.Close()
	_, _, err = hs.Open(context.Background(), 0)
	if err == nil || isPermanentErr(err) {
		t.Errorf("Open(refused after an answer) = %v (permanent %v), want an error to retry", err, isPermanentErr(err))
	}
}

// TestStdinSource: standard input is read once; a second open, as a resume or
// a qcow2 table read would need, fails for good.
func TestStdinSource(t *testing.T) {
	res, err := (&Resolver{Stdin: strings.NewReader("image bytes")}).Resolve(context.Background(), "-")
	if err != nil || res.Name != StdinName {
		t.Fatalf("Resolve(-) = %+v, %v, want standard input", res, err)
	}
	rc, size, err := res.Source.Open(context.Background(), 0)
	if err != nil || size != -1 {
		t.Fatalf("Open(0) = size %d, %v, want a stream of unknown size", size, err)
	}
	rc.Close()
	for _, off := range []int64{0, 5} {
		if _, _, err := res.Source.Open(context.Background(), off); err == nil || !isPermanentErr(err) || !strings.Contains(err.Error(), "read only once") {
			t.Errorf("second Open(%d) = %v, want a permanent error: it can be read only once", off, err)
		}
	}
}
