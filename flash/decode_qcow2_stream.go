package flash

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zstd"
)

// stream reads the source sequentially from offset 0 through r and delivers the
// guest image to sink: Zero for every range no extent covers, then Data for
// the extents in the order of their host offsets. It reads r no further than
// the last byte an extent needs. Compressed clusters are inflated on every
// core (ordered, parallel.go) and delivered in the order they were read.
func (q *qcow2Image) stream(ctx context.Context, r io.Reader, sink blockSink) error {
	slices.SortFunc(q.ext, func(a, b qcow2Extent) int { return cmp.Compare(a.guest, b.guest) })
	at := int64(0)
	for _, e := range q.ext {
		if e.guest > at {
			if err := sink.Zero(at, e.guest-at); err != nil {
				return err
			}
		}
		at = e.guest + int64(e.n)
	}
	if at < q.VirtualSize {
		if err := sink.Zero(at, q.VirtualSize-at); err != nil {
			return err
		}
	}
	if len(q.ext) == 0 {
		return nil
	}
	slices.SortFunc(q.ext, func(a, b qcow2Extent) int {
		return cmp.Or(cmp.Compare(a.host, b.host), cmp.Compare(a.guest, b.guest))
	})
	s := &qcow2Stream{q: q, r: r, sink: sink, buf: make([]byte, min(qcow2Chunk, q.hostEnd)+q.maxCsize)}
	if q.maxCsize == 0 {
		return s.run(ctx)
	}
	// Inflating compressed clusters is most of the work: spread it over the
	// CPUs, within a memory budget of about 16 MiB for the compressed bytes
	// being inflated or queued and the clusters inflated.
	n := min(2*runtime.GOMAXPROCS(0), max(2, int((16<<20)/(q.maxCsize+q.clusterSize))))
	s.free = make(chan []byte, n)
	for range n {
		s.free <- nil
	}
	read := func(ctx context.Context, send func(qcow2Job) error) error {
		s.send = send
		return s.run(ctx)
	}
	return ordered(ctx, min(n, runtime.GOMAXPROCS(0)), read, func() (func(qcow2Job, turn) error, func()) {
		var d qcow2Inflater
		return func(j qcow2Job, t turn) error {
			out, err := d.cluster(j.in, q)
			s.free <- j.in
			if err != nil {
				return fmt.Errorf("qcow2 compressed cluster at %#x for guest %#x: %w", j.e.host, j.e.guest, err)
			}
			if _, err := t.wait(); err != nil {
				return err
			}
			for off := int64(0); off < int64(j.e.n); off += qcow2Chunk {
				if err := sink.Data(j.e.guest+off, out[off:min(off+qcow2Chunk, int64(j.e.n))]); err != nil {
					return err
				}
			}
			t.pass(0) // the offsets are the clusters' own: only the order counts
			return nil
		}, d.close
	})
}

// qcow2Stream is one pass of stream over the source. The window buf[:len(win)]
// holds source bytes [ws, pos); each step slides it, reads up to qcow2Chunk more,
// and serves the active extents, those whose host range has started. A
// standard extent takes its bytes as they arrive; a compressed one waits until
// its whole range is in the window, which therefore keeps up to maxCsize bytes
// from before the step, and then is copied out to a job of the worker pool.
type qcow2Stream struct {
	q        *qcow2Image
	r        io.Reader
	sink     blockSink
	buf, win []byte
	ws, pos  int64
	eof      bool
	next     int // first extent not yet active
	active   []qcow2Active

	send func(qcow2Job) error // queues a compressed cluster
	free chan []byte          // buffers for compressed clusters
}

type qcow2Active struct {
	e    qcow2Extent
	done int64 // host offset up to which a standard extent was delivered
}

// qcow2Job is one compressed cluster to inflate.
type qcow2Job struct {
	e  qcow2Extent
	in []byte // the compressed bytes, copied out of the window
}

func (s *qcow2Stream) run(ctx context.Context) error {
	ext := s.q.ext
	for {
		for s.next < len(ext) && ext[s.next].host < s.pos {
			e := ext[s.next]
			s.active = append(s.active, qcow2Active{e: e, done: e.host})
			s.next++
		}
		if err := s.serve(ctx); err != nil {
			return err
		}
		if len(s.active) == 0 && s.next == len(ext) {
			return nil
		}
		if s.eof {
			at := ext[min(s.next, len(ext)-1)].host
			if len(s.active) > 0 {
				at = s.active[0].done
			}
			return fmt.Errorf("%w: qcow2 file ends at byte %d, before the cluster data at %#x", ErrCorrupt, s.pos, at)
		}
		if err := s.advance(); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// serve hands the active extents what the window holds for them and retires
// those that are complete.
func (s *qcow2Stream) serve(ctx context.Context) error {
	kept := s.active[:0]
	for _, a := range s.active {
		e := a.e
		if e.csize == 0 {
			end := min(e.hostEnd(), s.pos)
			if end > a.done {
				p := s.win[a.done-s.ws : end-s.ws]
				if err := s.sink.Data(e.guest+(a.done-e.host), p); err != nil {
					return err
				}
				a.done = end
			}
			if a.done < e.hostEnd() {
				kept = append(kept, a)
			}
			continue
		}
		end := min(e.hostEnd(), s.pos)
		if end < e.hostEnd() && !s.eof {
			kept = append(kept, a)
			continue
		}
		if err := s.start(ctx, e, s.win[e.host-s.ws:end-s.ws]); err != nil {
			return err
		}
	}
	clear(s.active[len(kept):])
	s.active = kept
	return nil
}

// start queues the compressed cluster e, copied from src, for a worker,
// waiting for a free buffer while all are in use.
func (s *qcow2Stream) start(ctx context.Context, e qcow2Extent, src []byte) error {
	var buf []byte
	select {
	case buf = <-s.free:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.send(qcow2Job{e: e, in: append(buf[:0], src...)})
}

// advance slides the window past what no active extent needs any more, skips
// to the next extent when none is active, and reads the next chunk.
func (s *qcow2Stream) advance() error {
	keep := s.pos
	for _, a := range s.active {
		if a.e.csize != 0 {
			keep = min(keep, a.e.host)
		}
	}
	n := copy(s.buf, s.win[keep-s.ws:])
	s.win, s.ws = s.buf[:n], keep
	if len(s.active) == 0 {
		for to := s.q.ext[s.next].host; s.pos < to; {
			m, err := io.ReadFull(s.r, s.buf[:min(int64(len(s.buf)), to-s.pos)])
			s.pos += int64(m)
			if err != nil {
				return s.readErr(err)
			}
		}
		s.win, s.ws = s.buf[:0], s.pos
	}
	want := min(qcow2Chunk, s.q.hostEnd-s.pos)
	m, err := io.ReadFull(s.r, s.buf[len(s.win):int64(len(s.win))+want])
	s.win = s.buf[:len(s.win)+m]
	s.pos += int64(m)
	if err != nil {
		return s.readErr(err)
	}
	return nil
}

// readErr notes the end of the file, which run reports if a byte is missing,
// and passes other failures on.
func (s *qcow2Stream) readErr(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		s.eof = true
		return nil
	}
	return fmt.Errorf("qcow2 read at byte %d: %w", s.pos, err)
}

// qcow2Inflater inflates compressed clusters, reusing its decompressor and
// output buffer.
type qcow2Inflater struct {
	src   bytes.Reader
	flate io.ReadCloser
	zstd  *zstd.Decoder
	out   []byte
}

// cluster decodes one cluster from src, which may run past the compressed
// data (the sector count rounds up): decoding stops once the cluster is full.
func (d *qcow2Inflater) cluster(src []byte, q *qcow2Image) ([]byte, error) {
	d.src.Reset(src)
	if d.out == nil {
		d.out = make([]byte, q.clusterSize)
	}
	var r io.Reader
	if q.zstd {
		if d.zstd == nil {
			// Synchronous (concurrency 1): it stops at the end of the frame
			// instead of racing ahead into the padding after it.
			z, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
				zstd.WithDecoderMaxWindow(uint64(max(2*q.clusterSize, 1<<20))))
			if err != nil {
				return nil, err
			}
			d.zstd = z
		}
		if err := d.zstd.Reset(&d.src); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		r = d.zstd
	} else {
		if d.flate == nil {
			d.flate = flate.NewReader(&d.src)
		} else if err := d.flate.(flate.Resetter).Reset(&d.src, nil); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		r = d.flate
	}
	n, err := io.ReadFull(r, d.out)
	if err != nil {
		return nil, fmt.Errorf("%w: inflates to %d of %d bytes: %w", ErrCorrupt, n, len(d.out), err)
	}
	return d.out, nil
}

// close releases the zstd decoder.
func (d *qcow2Inflater) close() {
	if d.zstd != nil {
		d.zstd.Close()
	}
}
