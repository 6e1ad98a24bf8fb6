package flash

import "context"

// prefetcher reads and hashes the source in a goroutine of its own, a few
// buffers ahead of the decoder, so that on two cores hashing the source
// overlaps decoding and zero detection instead of adding to them.
type prefetcher struct {
	full  chan chunk
	free  chan []byte
	cur   []byte // unread part of the buffer being consumed
	buf   []byte // the buffer cur is in, to give back
	zeros int64  // unread part of the hole being consumed
	err   error  // the error that ended the stream, once cur is drained
	errc  chan error
}

// chunk is the next part of the source: data read into a buffer, or a hole of
// a sparse file that reads as zeros and was neither read nor copied.
type chunk struct {
	b     []byte
	zeros int64
}

// The buffers are 4 MiB: a raw image's data is written from them as it was
// read, and four writes of 4 MiB took less time than sixteen of 1 MiB (fast
// target, raw: 190 against 201 ms, medians of 21 interleaved runs; compressed
// sources the same). On huge pages (alignedBuf) their size costs no faults.
const (
	prefetchBuffers = 4
	prefetchSize    = 4 << 20
	undecidedRead   = 64 << 10 // the most read at once before the format is known
)

func newPrefetcher(ctx context.Context, r *resumeReader) *prefetcher {
	p := &prefetcher{full: make(chan chunk, prefetchBuffers), free: make(chan []byte, prefetchBuffers), errc: make(chan error, 1)}
	arena := alignedBuf(prefetchBuffers * prefetchSize)
	for i := range prefetchBuffers {
		// Aligned, so that the raw path can write them as they are (Take).
		p.free <- arena[i*prefetchSize : (i+1)*prefetchSize : (i+1)*prefetchSize]
	}
	go func() {
		defer close(p.full)
		for {
			if n, err := r.skipHole(); err != nil {
				p.errc <- err
				return
			} else if n > 0 {
				select {
				case p.full <- chunk{zeros: n}:
				case <-ctx.Done():
					p.errc <- ctx.Err()
					return
				}
				continue
			}
			var b []byte
			select {
			case b = <-p.free:
			case <-ctx.Done():
				p.errc <- ctx.Err()
				return
			}
			if r.hashing.Load() == hashUndecided {
				// The probers wait for the first bytes, and until they
				// decide, a hole is read as zeros and hashed: read little.
				b = b[:undecidedRead]
			}
			n, err := r.Read(b)
			if n > 0 {
				select {
				case p.full <- chunk{b: b[:n]}:
				case <-ctx.Done():
					p.errc <- ctx.Err()
					return
				}
			} else {
				p.free <- b[:cap(b)]
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
	if err := p.fetch(); err != nil {
		return 0, err
	}
	if p.zeros > 0 {
		n := int(min(int64(len(b)), p.zeros))
		clear(b[:n])
		p.zeros -= int64(n)
		return n, nil
	}
	n := copy(b, p.cur)
	p.cur = p.cur[n:]
	return n, nil
}

// next returns the rest of the current chunk, data or zeros, and consumes it; the
// data is valid until the next call.
func (p *prefetcher) next() (data []byte, zeros int64, err error) {
	if err := p.fetch(); err != nil {
		return nil, 0, err
	}
	data, zeros = p.cur, p.zeros
	p.cur, p.zeros = nil, 0
	return data, zeros, nil
}

// keep hands the buffer of the data next returned last over to the caller,
// who gives it back with the function returned once done with the data; nil
// when that buffer is handed over already (or there is none).
func (p *prefetcher) keep() func() {
	b := p.buf
	if b == nil {
		return nil
	}
	p.buf = nil
	return func() { p.free <- b[:cap(b)] }
}

// fetch makes sure there is an unread chunk, or returns the error that ended
// the stream.
func (p *prefetcher) fetch() error {
	for len(p.cur) == 0 && p.zeros == 0 {
		if p.buf != nil {
			p.free <- p.buf[:cap(p.buf)]
			p.buf = nil
		}
		if p.err != nil {
			return p.err
		}
		next, ok := <-p.full
		if !ok {
			p.err = <-p.errc
			continue
		}
		if next.b != nil {
			p.buf = next.b
		}
		p.cur, p.zeros = next.b, next.zeros
	}
	return nil
}
