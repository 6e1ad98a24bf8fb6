package lzma2

import (
	"errors"
	"fmt"
)

// The LZMA decoder. Its speed comes from keeping the range coder in
// registers: the hot loop (Reader.decode) copies range, code and the input
// position into local variables, and each bit goes through bit(), a small
// function of values that the compiler inlines (cost 69 of the budget of 80);
// a method on a struct was neither inlined nor kept in registers, and cost
// a load and a store of each field per bit. The input of a chunk is a byte
// slice (the whole compressed chunk, at most 64 KiB), so a bit costs one
// bounds check instead of a call to ReadByte.

const (
	probInit  = 1 << 10 // a probability of 1/2, in 11 bits
	numStates = 12
	endMarker = 1<<32 - 1 // the LZMA end-of-payload marker's distance
)

// lenProbs are the probabilities of a length coder (matches and reps).
type lenProbs struct {
	choice, choice2 uint16
	low, mid        [16][8]uint16
	high            [256]uint16
}

// probs holds every adaptive probability. Tables indexed by state have 16
// rows so that state&15 needs no bounds check.
type probs struct {
	isMatch    [16 << 4]uint16
	isRep      [16]uint16
	isRep0     [16]uint16
	isRep1     [16]uint16
	isRep2     [16]uint16
	isRep0Long [16 << 4]uint16
	posSlot    [4][64]uint16
	posSpecial [1 + 114]uint16 // xz's table from index 1, so that t[m] needs no -1
	align      [16]uint16
	matchLen   lenProbs
	repLen     lenProbs
	lit        [0x300 << 4]uint16
}

// decoder is the LZMA state that lasts across chunks.
type decoder struct {
	lc, lp, pb uint
	state      uint32
	rep        [4]uint32
	pend       int // bytes left of a match cut at the end of a decode batch

	rng, code uint32
	in        []byte // the compressed chunk
	ip        int    // next byte of in; past len(in) on an overrun

	p probs
}

func (d *decoder) setProps(b byte) error {
	if b > (4*5+4)*9+8 {
		return fmt.Errorf("invalid properties byte %#02x", b)
	}
	lc, lp, pb := uint(b%9), uint(b/9%5), uint(b/45)
	if lc+lp > 4 {
		return fmt.Errorf("properties lc=%d lp=%d: lc+lp exceeds 4", lc, lp)
	}
	d.lc, d.lp, d.pb = lc, lp, pb
	return nil
}

// reset is LZMA2's state reset: every probability to 1/2, no history of
// matches. Only the literal tables the properties use are reset.
func (d *decoder) reset() {
	p := &d.p
	lit := p.lit[:0x300<<(d.lc+d.lp)]
	for _, t := range [][]uint16{p.isMatch[:], p.isRep[:], p.isRep0[:], p.isRep1[:], p.isRep2[:], p.isRep0Long[:], p.posSpecial[:], p.align[:], lit} {
		for i := range t {
			t[i] = probInit
		}
	}
	for i := range p.posSlot {
		for j := range p.posSlot[i] {
			p.posSlot[i][j] = probInit
		}
	}
	for _, l := range []*lenProbs{&p.matchLen, &p.repLen} {
		l.choice, l.choice2 = probInit, probInit
		for i := range l.low {
			for j := range l.low[i] {
				l.low[i][j], l.mid[i][j] = probInit, probInit
			}
		}
		for i := range l.high {
			l.high[i] = probInit
		}
	}
	d.state = 0
	d.rep = [4]uint32{}
}

// initRC starts the range decoder on a compressed chunk.
func (d *decoder) initRC(in []byte, z *Reader) error {
	if len(in) < 5 {
		if z.truncated {
			return z.truncatedErr()
		}
		return z.corruptIn("LZMA chunk shorter than the range coder's 5 bytes", 0)
	}
	if in[0] != 0 {
		return z.corruptIn("LZMA chunk's first byte is not 0", 0)
	}
	d.in, d.ip = in, 5
	d.rng = 0xffffffff
	d.code = uint32(in[1])<<24 | uint32(in[2])<<16 | uint32(in[3])<<8 | uint32(in[4])
	return nil
}

// bit decodes one bit with probability *p, normalizing first. Past the end of
// in it reads zeros and counts on, so that the chunk's end check catches the
// overrun.
func bit(p *uint16, rng, code uint32, in []byte, ip int) (uint32, uint32, int, uint32) {
	if rng < 1<<24 {
		rng <<= 8
		code <<= 8
		if ip < len(in) {
			code |= uint32(in[ip])
		}
		ip++
	}
	bound := (rng >> 11) * uint32(*p)
	if code < bound {
		*p += (1<<11 - *p) >> 5
		return bound, code, ip, 0
	}
	*p -= *p >> 5
	return rng - bound, code - bound, ip, 1
}

// tree decodes an n-bit symbol from a bit tree, most significant bit first.
func tree(t []uint16, n uint, rng, code uint32, in []byte, ip int) (uint32, uint32, int, uint32) {
	sym := uint32(1)
	for i := uint(0); i < n; i++ {
		var b uint32
		rng, code, ip, b = bit(&t[sym], rng, code, in, ip)
		sym = sym<<1 | b
	}
	return rng, code, ip, sym - 1<<n
}

// reverse decodes an n-bit symbol from a bit tree, least significant bit
// first.
func reverse(t []uint16, n uint, rng, code uint32, in []byte, ip int) (uint32, uint32, int, uint32) {
	m, sym := uint32(1), uint32(0)
	for i := uint(0); i < n; i++ {
		var b uint32
		rng, code, ip, b = bit(&t[m], rng, code, in, ip)
		m = m<<1 | b
		sym |= b << i
	}
	return rng, code, ip, sym
}

// length decodes a match length (2 to 273).
func (l *lenProbs) length(posState uint32, rng, code uint32, in []byte, ip int) (uint32, uint32, int, uint32) {
	var b, n uint32
	rng, code, ip, b = bit(&l.choice, rng, code, in, ip)
	if b == 0 {
		rng, code, ip, n = tree(l.low[posState&15][:], 3, rng, code, in, ip)
		return rng, code, ip, n + 2
	}
	rng, code, ip, b = bit(&l.choice2, rng, code, in, ip)
	if b == 0 {
		rng, code, ip, n = tree(l.mid[posState&15][:], 3, rng, code, in, ip)
		return rng, code, ip, n + 10
	}
	rng, code, ip, n = tree(l.high[:], 8, rng, code, in, ip)
	return rng, code, ip, n + 18
}

// distance decodes the distance (minus one) of a match of length n.
func (p *probs) distance(n uint32, rng, code uint32, in []byte, ip int) (uint32, uint32, int, uint32) {
	var slot uint32
	rng, code, ip, slot = tree(p.posSlot[min(n-2, 3)][:], 6, rng, code, in, ip)
	if slot < 4 {
		return rng, code, ip, slot
	}
	nd := uint(slot>>1 - 1)
	dist := (2 | slot&1) << nd
	var s uint32
	if slot < 14 {
		rng, code, ip, s = reverse(p.posSpecial[dist-slot:], nd, rng, code, in, ip)
		return rng, code, ip, dist + s
	}
	// Direct bits, then four bits from the align tree.
	for i := nd - 4; i > 0; i-- {
		if rng < 1<<24 {
			rng <<= 8
			code <<= 8
			if ip < len(in) {
				code |= uint32(in[ip])
			}
			ip++
		}
		rng >>= 1
		code -= rng
		t := 0 - code>>31
		code += rng & t
		s = s<<1 + t + 1
	}
	rng, code, ip, a := reverse(p.align[:], 4, rng, code, in, ip)
	return rng, code, ip, dist + s<<4 + a
}

var errEndMarker = errors.New("end-of-payload marker inside an LZMA2 chunk")

// decode decodes the current LZMA chunk into z.buf[z.pos:limit].
func (z *Reader) decode(limit int) error {
	d := &z.d
	buf := z.buf
	pos := z.pos
	base := int(z.base) // bytes since the dictionary reset = base + pos
	window := z.window
	rep0, rep1, rep2, rep3 := d.rep[0], d.rep[1], d.rep[2], d.rep[3]
	if d.pend > 0 {
		n := min(d.pend, limit-pos)
		copyMatch(buf, pos, int(rep0)+1, n)
		pos += n
		d.pend -= n
	}
	rng, code, in, ip := d.rng, d.code, d.in, d.ip
	state := d.state
	p := &d.p
	pbMask := uint32(1)<<d.pb - 1
	lpMask := uint32(1)<<d.lp - 1
	lc := d.lc
	var err error
	last := pos // where the symbol being decoded starts
	for pos < limit {
		if ip > len(in) {
			// The last symbol read past the chunk: in a truncated
			// chunk, it was decoded from bytes that are not there.
			if z.truncated {
				pos = last
				d.pend = 0
				err = z.truncatedErr()
			} else {
				err = z.corruptIn("LZMA chunk reads past its compressed size", ip)
			}
			break
		}
		last = pos
		posState := uint32(base+pos) & pbMask
		var b uint32
		rng, code, ip, b = bit(&p.isMatch[(state&15)<<4|posState&15], rng, code, in, ip)
		if b == 0 {
			// A literal, coded with the previous byte's high bits and
			// the position's low bits as context.
			var prev uint32 // 0 at the start of the dictionary
			if pos > 0 {
				prev = uint32(buf[pos-1])
			} else if base > 0 {
				prev = uint32(buf[len(buf)-1]) // wrapped
			}
			ctx := (uint32(base+pos)&lpMask)<<lc + prev>>(8-lc)
			lit := (*[0x300]uint16)(p.lit[(ctx&15)*0x300:])
			sym := uint32(1)
			if state < 7 {
				// Unrolled, as liblzma does: no loop branch to
				// mispredict at the end of each literal.
				rng, code, ip, b = bit(&lit[1], rng, code, in, ip)
				sym = 2 | b
				rng, code, ip, b = bit(&lit[sym&0xff], rng, code, in, ip)
				sym = sym<<1 | b
				rng, code, ip, b = bit(&lit[sym&0xff], rng, code, in, ip)
				sym = sym<<1 | b
				rng, code, ip, b = bit(&lit[sym&0xff], rng, code, in, ip)
				sym = sym<<1 | b
				rng, code, ip, b = bit(&lit[sym&0xff], rng, code, in, ip)
				sym = sym<<1 | b
				rng, code, ip, b = bit(&lit[sym&0xff], rng, code, in, ip)
				sym = sym<<1 | b
				rng, code, ip, b = bit(&lit[sym&0xff], rng, code, in, ip)
				sym = sym<<1 | b
				rng, code, ip, b = bit(&lit[sym&0xff], rng, code, in, ip)
				sym = sym<<1 | b
			} else {
				// After a match: the byte at rep0 steers the
				// probabilities until the first bit that differs.
				src := pos - int(rep0) - 1
				if src < 0 {
					src += len(buf)
				}
				m := uint32(buf[src])
				off := uint32(0x100)
				for sym < 0x100 {
					m <<= 1
					mb := m & off
					rng, code, ip, b = bit(&lit[off+mb+sym], rng, code, in, ip)
					sym = sym<<1 | b
					if b == 0 {
						off &^= mb
					} else {
						off &= mb
					}
				}
			}
			buf[pos] = byte(sym)
			pos++
			switch {
			case state < 4:
				state = 0
			case state < 10:
				state -= 3
			default:
				state -= 6
			}
			continue
		}
		var n uint32
		rng, code, ip, b = bit(&p.isRep[state&15], rng, code, in, ip)
		if b == 0 {
			// A match with a new distance.
			rng, code, ip, n = p.matchLen.length(posState, rng, code, in, ip)
			rep3, rep2, rep1 = rep2, rep1, rep0
			rng, code, ip, rep0 = p.distance(n, rng, code, in, ip)
			if rep0 == endMarker {
				err = z.corruptIn(errEndMarker.Error(), ip)
				break
			}
			if state < 7 {
				state = 7
			} else {
				state = 10
			}
		} else {
			// A match at one of the last four distances.
			rng, code, ip, b = bit(&p.isRep0[state&15], rng, code, in, ip)
			if b == 0 {
				rng, code, ip, b = bit(&p.isRep0Long[(state&15)<<4|posState&15], rng, code, in, ip)
				if b == 0 {
					n = 1 // a single byte at rep0
				}
			} else {
				var dist uint32
				rng, code, ip, b = bit(&p.isRep1[state&15], rng, code, in, ip)
				if b == 0 {
					dist = rep1
				} else {
					rng, code, ip, b = bit(&p.isRep2[state&15], rng, code, in, ip)
					if b == 0 {
						dist = rep2
					} else {
						dist, rep3 = rep3, rep2
					}
					rep2 = rep1
				}
				rep1, rep0 = rep0, dist
			}
			if n == 1 {
				if state < 7 {
					state = 9
				} else {
					state = 11
				}
			} else {
				rng, code, ip, n = p.repLen.length(posState, rng, code, in, ip)
				if state < 7 {
					state = 8
				} else {
					state = 11
				}
			}
		}
		if int(rep0) >= window || int(rep0) >= base+pos {
			err = fmt.Errorf("%w, at input byte %d", ErrDistance, z.chunkOff+int64(min(ip, len(in))))
			break
		}
		k := min(int(n), limit-pos)
		copyMatch(buf, pos, int(rep0)+1, k)
		pos += k
		d.pend = int(n) - k
	}
	if err == nil && ip > len(in) && z.truncated {
		pos = last
		d.pend = 0
		err = z.truncatedErr()
	}
	z.pos = pos
	d.rng, d.code, d.ip = rng, code, ip
	d.state = state
	d.rep = [4]uint32{rep0, rep1, rep2, rep3}
	return err
}

// copyMatch copies n bytes from dist bytes back in the circular buffer to
// pos; the destination does not wrap (n <= len(buf)-pos).
func copyMatch(buf []byte, pos, dist, n int) {
	src := pos - dist
	if src < 0 {
		// The source starts before the wrap: its part up to the end of
		// the buffer lies after the destination (dist <= len(buf)), so
		// a forward copy is safe.
		src += len(buf)
		k := copy(buf[pos:pos+n], buf[src:])
		pos, n, src = pos+k, n-k, 0
	}
	if n <= 8 {
		// Short matches are the most common: no call to memmove. A
		// forward byte copy also repeats an overlapping source.
		for i := range n {
			buf[pos+i] = buf[src+i]
		}
		return
	}
	// An overlapping source repeats with period dist: copy what is there,
	// doubling the run each time.
	for n > 0 {
		k := copy(buf[pos:pos+n], buf[src:pos])
		pos += k
		n -= k
	}
}
