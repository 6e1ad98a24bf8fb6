package demo

import (
	"context"
	"io"
	"time"

	"bty/flash"
)

// SlowSource delivers a source's bytes at a steady rate, in small reads, so
// that a demo flash lasts long enough to watch. Opens at an offset (format
// probes reading an index or a table) are not slowed. It keeps every
// optional behaviour of the source it wraps (flash.Source says which): it is
// Rereadable when that one is, its readers skip the holes that one's do (a
// hole counts toward the rate like the bytes it stands for), and errors pass
// through as they are.
type SlowSource struct {
	src   flash.Source
	rate  float64 // bytes per second
	chunk int     // largest read
}

var (
	_ flash.Rereadable  = (*SlowSource)(nil)
	_ flash.HoleSkipper = (*slowReader)(nil)
)

// Slow wraps src, of size bytes, so that reading it takes about d.
func Slow(src flash.Source, size int64, d time.Duration) *SlowSource {
	return &SlowSource{src: src, rate: float64(size) / d.Seconds(), chunk: int(max(16, size/200))}
}

func (s *SlowSource) Name() string { return s.src.Name() }

// Rereadable is the wrapped source's.
func (s *SlowSource) Rereadable() bool {
	r, ok := s.src.(flash.Rereadable)
	return ok && r.Rereadable()
}

func (s *SlowSource) Open(ctx context.Context, off int64) (io.ReadCloser, int64, error) {
	rc, n, err := s.src.Open(ctx, off)
	if err != nil || off != 0 {
		return rc, n, err
	}
	return &slowReader{rc: rc, ctx: ctx, s: s, start: time.Now()}, n, nil
}

type slowReader struct {
	rc    io.ReadCloser
	ctx   context.Context
	s     *SlowSource
	start time.Time
	n     int64 // bytes delivered, holes included
}

func (r *slowReader) Read(p []byte) (int, error) {
	if len(p) > r.s.chunk {
		p = p[:r.s.chunk]
	}
	n, err := r.rc.Read(p)
	r.n += int64(n)
	if wait := time.Duration(float64(r.n)/r.s.rate*float64(time.Second)) - time.Since(r.start); wait > 0 {
		select {
		case <-time.After(wait):
		case <-r.ctx.Done():
			return n, r.ctx.Err()
		}
	}
	return n, err
}

// SkipHole is the wrapped reader's (0 when it skips no holes); the next Read
// waits for the hole's share of the time.
func (r *slowReader) SkipHole() int64 {
	h, ok := r.rc.(flash.HoleSkipper)
	if !ok {
		return 0
	}
	n := h.SkipHole()
	r.n += n
	return n
}

func (r *slowReader) Close() error { return r.rc.Close() }
