package flash

import "io"

// input is the source read once, from its start to its end: the prefetcher
// reads and hashes it a few MiB ahead in its own goroutine. peek keeps the
// first bytes for the probers, Read serves the decoders, next serves the raw
// path chunk by chunk, with a hole of a sparse file as a count of zeros that
// was neither read nor copied, and drain reads what is left, for the checks
// at the end of the source.
type input struct {
	pf   *prefetcher
	held []byte // peeked and not consumed yet
}

// peek returns the first n bytes not consumed yet, without consuming them;
// fewer, with the error that ended the source, when it ends first.
func (in *input) peek(n int) ([]byte, error) {
	for len(in.held) < n {
		if cap(in.held) < n {
			in.held = append(make([]byte, 0, max(n, 64<<10)), in.held...)
		}
		k, err := in.pf.Read(in.held[len(in.held):n])
		in.held = in.held[:len(in.held)+k]
		if err != nil {
			return in.held, err
		}
	}
	return in.held[:n], nil
}

func (in *input) Read(p []byte) (int, error) {
	if len(in.held) > 0 {
		n := copy(p, in.held)
		in.held = in.held[n:]
		return n, nil
	}
	return in.pf.Read(p)
}

// next returns the next chunk of the source, data or zeros, and consumes it;
// the data is valid until the next call.
func (in *input) next() (data []byte, zeros int64, err error) {
	if len(in.held) > 0 {
		data, in.held = in.held, nil
		return data, 0, nil
	}
	return in.pf.next()
}

// take is next for a consumer that keeps the data past the next call: the
// data stays valid until release is called, which gives its buffer back to
// the prefetcher. release is never nil.
func (in *input) take() (data []byte, zeros int64, release func(), err error) {
	held := len(in.held) > 0 // a copy of the peeked bytes, in no buffer
	data, zeros, err = in.next()
	release = func() {}
	if len(data) > 0 && !held {
		if r := in.pf.keep(); r != nil {
			release = r
		}
	}
	return data, zeros, release, err
}

// drain reads the source to its end, where the length and digest checks run.
func (in *input) drain() error {
	for {
		if _, _, err := in.next(); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}
