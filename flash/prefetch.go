package flash

import (
	"context"
	"io"
)

// prefetcher reads and hashes the source in a goroutine of its own, a few
// buffers ahead of the decoder, so that on two cores hashing the source
// overlaps decoding and zero detection instead of adding to them.
type prefetcher struct {
	full chan []byte
	free chan []byte
	cur  []byte // unread part of the buffer being consumed
	buf  []byte // the buffer cur is in, to give back
	err  error  // the error that ended the stream, once cur is drained
	errc chan error
}

const (
	prefetchBuffers = 4
	prefetchSize    = 1 << 20
)

func newPrefetcher(ctx context.Context, r io.Reader) *prefetcher {
	p := &prefetcher{full: make(chan []byte, prefetchBuffers), free: make(chan []byte, prefetchBuffers), errc: make(chan error, 1)}
	for range prefetchBuffers {
		p.free <- make([]byte, prefetchSize)
	}
	go func() {
		defer close(p.full)
		for {
			var b []byte
			select {
			case b = <-p.free:
			case <-ctx.Done():
				p.errc <- ctx.Err()
				return
			}
			n, err := r.Read(b)
			if n > 0 {
				select {
				case p.full <- b[:n]:
				case <-ctx.Done():
					p.errc <- ctx.Err()
					return
				}
			} else {
				p.free <- b
			}
			if err != nil {
				p.errc <- err
				return
			}
		}
	}()
	return p
}

func (p *prefetcher) Read(b []byte) (int, error) {
	for len(p.cur) == 0 {
		if p.buf != nil {
			p.free <- p.buf[:cap(p.buf)]
			p.buf = nil
		}
		if p.err != nil {
			return 0, p.err
		}
		next, ok := <-p.full
		if !ok {
			p.err = <-p.errc
			continue
		}
		p.buf, p.cur = next, next
	}
	n := copy(b, p.cur)
	p.cur = p.cur[n:]
	return n, nil
}
