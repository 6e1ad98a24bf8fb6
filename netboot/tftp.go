package netboot

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
)

// TFTP opcodes (RFC 1350, RFC 2347).
const (
	opRRQ   = 1
	opWRQ   = 2
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6
)

// TFTP error codes (RFC 1350, RFC 2347).
const (
	errUndefined  = 0
	errNotFound   = 1
	errAccess     = 2
	errIllegalOp  = 4
	errUnknownTID = 5
	errOption     = 8
)

// Limits of the options bty accepts.
const (
	minBlksize = 8     // RFC 2348
	maxBlksize = 65464 // RFC 2348: the largest that fits a UDP datagram
	// maxWindow caps windowsize (RFC 7440 allows 65535). 64 blocks in flight
	// keep a window's block numbers distinct modulo 2^16 and fill a LAN;
	// firmware asks for 4 to 16.
	maxWindow = 64
	// maxNetascii caps the files served in netascii mode, which are converted
	// in memory; boot files are fetched in octet mode.
	maxNetascii = 16 << 20
	// maxTransfers caps concurrent transfers; a request beyond is refused
	// and the firmware retries.
	maxTransfers = 256
	// retries: a packet is sent this many times more before the transfer is
	// given up (tftpd-hpa gives up after about as many).
	retries = 5
)

// TFTPConfig configures a TFTP server.
type TFTPConfig struct {
	// Addr is the host:port to listen on (port 69 for firmware). Transfers
	// use a new port on the same host, as RFC 1350 asks.
	Addr string
	// Root is the directory served; nothing outside it is readable (no
	// "..", no absolute paths, no symbolic link leading out).
	Root string
	// Timeout is how long an unacknowledged packet waits before it is sent
	// again. Zero means one second, or the client's timeout option.
	Timeout time.Duration
	// Event receives one event per transfer or refusal. Nil discards them.
	Event func(Event)
}

// TFTPServer is a read-only TFTP server (RFC 1350) with option negotiation
// (RFC 2347) for blksize (RFC 2348), tsize and timeout (RFC 2349) and
// windowsize (RFC 7440).
type TFTPServer struct {
	cfg  TFTPConfig
	conn *net.UDPConn
	root *os.Root

	mu     sync.Mutex
	active map[string]bool // client address -> transfer running
	wg     sync.WaitGroup
}

// ListenTFTP opens the server's socket and its root directory.
func ListenTFTP(cfg TFTPConfig) (*TFTPServer, error) {
	root, err := os.OpenRoot(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("%w: TFTP root: %w", ErrConfig, err)
	}
	addr, err := net.ResolveUDPAddr("udp4", cfg.Addr)
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("%w: TFTP address %q: %w", ErrConfig, cfg.Addr, err)
	}
	conn, err := net.ListenUDP("udp4", addr)
	if err != nil {
		root.Close()
		return nil, listenError(addr.Port, "TFTP", err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	if cfg.Event == nil {
		cfg.Event = func(Event) {}
	}
	return &TFTPServer{cfg: cfg, conn: conn, root: root, active: map[string]bool{}}, nil
}

// Addr is the address the server listens on.
func (s *TFTPServer) Addr() *net.UDPAddr { return s.conn.LocalAddr().(*net.UDPAddr) }

// Serve answers requests until ctx is cancelled, then waits for the
// transfers in flight to end and closes the server.
func (s *TFTPServer) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.conn.Close() })
	defer stop()
	defer s.root.Close()
	defer s.wg.Wait()
	buf := make([]byte, 65536)
	for {
		n, peer, err := s.conn.ReadFromUDP(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("TFTP: %w", err)
		}
		s.request(ctx, peer, buf[:n])
	}
}

// Close stops a server whose Serve was never called.
func (s *TFTPServer) Close() error {
	s.root.Close()
	return s.conn.Close()
}

// request starts a transfer for a read request and refuses anything else.
func (s *TFTPServer) request(ctx context.Context, peer *net.UDPAddr, p []byte) {
	if len(p) < 2 {
		return
	}
	switch op := binary.BigEndian.Uint16(p); op {
	case opRRQ:
	case opWRQ:
		s.refuse(s.conn, peer, errAccess, "bty's TFTP server is read-only", "write request refused")
		return
	default:
		s.refuse(s.conn, peer, errIllegalOp, fmt.Sprintf("opcode %d is not a request", op), "")
		return
	}
	req, err := parseRequest(p[2:])
	if err != nil {
		s.refuse(s.conn, peer, errIllegalOp, err.Error(), "bad request: "+err.Error())
		return
	}
	key := peer.String()
	s.mu.Lock()
	if s.active[key] {
		// A retransmitted request: the transfer running answers it when
		// its own timer fires.
		s.mu.Unlock()
		return
	}
	if len(s.active) >= maxTransfers {
		s.mu.Unlock()
		s.refuse(s.conn, peer, errUndefined, "server busy, try again", "busy: request for "+req.file+" refused")
		return
	}
	s.active[key] = true
	s.mu.Unlock()
	s.wg.Go(func() {
		defer func() {
			s.mu.Lock()
			delete(s.active, key)
			s.mu.Unlock()
		}()
		s.transfer(ctx, peer, req)
	})
}

// request is a parsed RRQ.
type request struct {
	file string
	mode string // "octet" or "netascii"
	opts map[string]string
}

func parseRequest(p []byte) (request, error) {
	fields := strings.Split(string(p), "\x00")
	if len(fields) < 3 || fields[len(fields)-1] != "" {
		return request{}, errors.New("malformed request")
	}
	fields = fields[:len(fields)-1]
	r := request{file: fields[0], mode: strings.ToLower(fields[1]), opts: map[string]string{}}
	if r.mode != "octet" && r.mode != "netascii" {
		return request{}, fmt.Errorf("mode %q is not served (octet or netascii)", fields[1])
	}
	rest := fields[2:]
	if len(rest)%2 != 0 {
		return request{}, errors.New("malformed options")
	}
	for i := 0; i < len(rest); i += 2 {
		r.opts[strings.ToLower(rest[i])] = rest[i+1]
	}
	return r, nil
}

// cleanPath maps a requested name to a path under the root: leading slashes
// and backslashes as separators are accepted (firmware sends both), a name
// that climbs out with ".." is not.
func cleanPath(name string) (string, error) {
	name = strings.TrimLeft(strings.ReplaceAll(name, `\`, "/"), "/")
	p := path.Clean(name)
	if name == "" || p == "." {
		return "", errors.New("no file name")
	}
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", errors.New("outside the boot directory")
	}
	return p, nil
}

// file is what a transfer reads: the file itself, or its netascii form.
type file interface {
	io.ReaderAt
	io.Closer
}

func (s *TFTPServer) open(req request) (file, int64, uint16, error) {
	name, err := cleanPath(req.file)
	if err != nil {
		return nil, 0, errAccess, err
	}
	f, err := s.root.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, 0, errNotFound, errors.New("file not found")
		}
		// os.Root refuses ".." and links that lead out of the root.
		return nil, 0, errAccess, errors.New("access violation")
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, 0, errNotFound, errors.New("not a regular file")
	}
	if req.mode != "netascii" {
		return f, st.Size(), 0, nil
	}
	defer f.Close()
	if st.Size() > maxNetascii {
		return nil, 0, errUndefined, errors.New("too large for netascii mode, ask for octet")
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, 0, errUndefined, errors.New("read error")
	}
	b = toNetascii(b)
	return nopCloser{bytes.NewReader(b)}, int64(len(b)), 0, nil
}

type nopCloser struct{ io.ReaderAt }

func (nopCloser) Close() error { return nil }

// toNetascii converts LF to CR LF and a bare CR to CR NUL (RFC 1350, RFC 764).
func toNetascii(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/16)
	for _, c := range b {
		switch c {
		case '\n':
			out = append(out, '\r', '\n')
		case '\r':
			out = append(out, '\r', 0)
		default:
			out = append(out, c)
		}
	}
	return out
}

// params are the negotiated transfer parameters.
type params struct {
	blksize int
	window  int
	timeout time.Duration
}

// negotiate accepts the options bty knows, within its limits, and returns
// the option acknowledgement to send (empty: no OACK, plain RFC 1350).
// Unknown options are ignored, as RFC 2347 asks.
func (s *TFTPServer) negotiate(opts map[string]string, size int64) (params, []string) {
	p := params{blksize: 512, window: 1, timeout: s.cfg.Timeout}
	var oack []string
	// A fixed order keeps the OACK the same for the same request.
	for _, name := range []string{"blksize", "tsize", "timeout", "windowsize"} {
		v, ok := opts[name]
		if !ok {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			continue
		}
		switch name {
		case "blksize":
			if n < minBlksize {
				continue
			}
			p.blksize = min(n, maxBlksize)
			oack = append(oack, name, strconv.Itoa(p.blksize))
		case "tsize":
			oack = append(oack, name, strconv.FormatInt(size, 10))
		case "timeout":
			if n < 1 || n > 255 {
				continue
			}
			p.timeout = time.Duration(n) * time.Second
			oack = append(oack, name, v)
		case "windowsize":
			if n < 1 {
				continue
			}
			p.window = min(n, maxWindow)
			oack = append(oack, name, strconv.Itoa(p.window))
		}
	}
	return p, oack
}

// transfer sends one file from its own port (the server's transfer ID).
func (s *TFTPServer) transfer(ctx context.Context, peer *net.UDPAddr, req request) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: s.Addr().IP})
	if err != nil {
		s.cfg.Event(Event{Kind: KindTFTPError, IP: peer.IP, Text: fmt.Sprintf("tftp: %s: %v", req.file, err)})
		return
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()

	f, size, code, err := s.open(req)
	if err != nil {
		s.refuse(conn, peer, code, err.Error(), fmt.Sprintf("%s: %v", req.file, err))
		return
	}
	defer f.Close()
	p, oack := s.negotiate(req.opts, size)
	t := &sender{conn: conn, peer: peer, f: f, size: size, p: p}
	start := time.Now()
	if len(oack) > 0 {
		err = t.oack(ctx, oack)
		var ep errPeer
		if errors.As(err, &ep) && req.opts["tsize"] != "" {
			// UEFI asks the size first, ends the transfer after the OACK,
			// and asks again for the data: not a failure.
			s.cfg.Event(Event{Kind: KindTFTP, IP: peer.IP, Text: fmt.Sprintf("tftp: told the size of %s (%d bytes)", req.file, size)})
			return
		}
	}
	if err == nil {
		err = t.send(ctx)
	}
	if err != nil {
		s.cfg.Event(Event{Kind: KindTFTPError, IP: peer.IP, Text: fmt.Sprintf("tftp: %s: %v", req.file, err)})
		return
	}
	s.cfg.Event(Event{Kind: KindTFTP, IP: peer.IP, Text: fmt.Sprintf("tftp: sent %s (%d bytes, blksize %d, windowsize %d) in %s",
		req.file, size, p.blksize, p.window, time.Since(start).Round(time.Millisecond))})
}

// refuse sends an ERROR packet and reports it.
func (s *TFTPServer) refuse(conn *net.UDPConn, peer *net.UDPAddr, code uint16, msg, event string) {
	if event != "" {
		s.cfg.Event(Event{Kind: KindTFTPError, IP: peer.IP, Text: "tftp: " + event})
	}
	conn.WriteToUDP(errorPacket(code, msg), peer)
}

func errorPacket(code uint16, msg string) []byte {
	b := binary.BigEndian.AppendUint16(nil, opERROR)
	b = binary.BigEndian.AppendUint16(b, code)
	return append(append(b, msg...), 0)
}

// errPeer is an ERROR packet from the client, which ends the transfer.
type errPeer struct {
	code uint16
	msg  string
}

func (e errPeer) Error() string { return fmt.Sprintf("client sent error %d: %s", e.code, e.msg) }

// sender runs the data phase of one transfer.
type sender struct {
	conn *net.UDPConn
	peer *net.UDPAddr
	f    io.ReaderAt
	size int64
	p    params
	buf  []byte
}

// oack sends the option acknowledgement until the client acknowledges it
// with ACK 0.
func (t *sender) oack(ctx context.Context, oack []string) error {
	pkt := binary.BigEndian.AppendUint16(nil, opOACK)
	for _, s := range oack {
		pkt = append(append(pkt, s...), 0)
	}
	for try := 0; try <= retries; try++ {
		if _, err := t.conn.WriteToUDP(pkt, t.peer); err != nil {
			return err
		}
		acked, err := t.waitACK(ctx, func(n uint16) bool { return n == 0 })
		if err != nil || acked {
			return err
		}
	}
	return errors.New("no acknowledgement of the options")
}

// send sends the file in windows of blocks. Blocks are numbered from 1; the
// last one is shorter than blksize (possibly empty). An ACK for a block
// inside the window moves the window there, so a client that saw a gap
// gets the rest at once (RFC 7440); a stale or duplicate ACK changes
// nothing, which avoids the Sorcerer's Apprentice syndrome (RFC 1123).
func (t *sender) send(ctx context.Context) error {
	bs := int64(t.p.blksize)
	last := t.size/bs + 1 // block numbers are 64 bits here, 16 on the wire
	t.buf = make([]byte, 4+t.p.blksize)
	var acked int64 // every block up to acked was received
	try := 0
	for acked < last {
		end := min(acked+int64(t.p.window), last)
		for b := acked + 1; b <= end; b++ {
			if err := t.data(b); err != nil {
				return err
			}
		}
		var got int64
		ok, err := t.waitACK(ctx, func(n uint16) bool {
			for b := acked + 1; b <= end; b++ {
				if uint16(b) == n {
					got = b
					return true
				}
			}
			return false
		})
		if err != nil {
			return err
		}
		if !ok {
			if try++; try > retries {
				return fmt.Errorf("no acknowledgement after block %d of %d", acked, last)
			}
			continue
		}
		try = 0
		acked = got
	}
	return nil
}

// data sends block b.
func (t *sender) data(b int64) error {
	n, err := t.f.ReadAt(t.buf[4:], (b-1)*int64(t.p.blksize))
	if err != nil && err != io.EOF {
		return err
	}
	binary.BigEndian.PutUint16(t.buf, opDATA)
	binary.BigEndian.PutUint16(t.buf[2:], uint16(b))
	_, err = t.conn.WriteToUDP(t.buf[:4+n], t.peer)
	return err
}

// waitACK reads until an ACK that want accepts arrives (true), the timeout
// passes (false), the client sends an error, or ctx ends. Packets from
// other ports get an "unknown transfer ID" error, as RFC 1350 asks.
func (t *sender) waitACK(ctx context.Context, want func(uint16) bool) (bool, error) {
	t.conn.SetReadDeadline(time.Now().Add(t.p.timeout))
	var b [516]byte
	for {
		n, from, err := t.conn.ReadFromUDP(b[:])
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if !from.IP.Equal(t.peer.IP) || from.Port != t.peer.Port {
			t.conn.WriteToUDP(errorPacket(errUnknownTID, "unknown transfer ID"), from)
			continue
		}
		if n < 4 {
			continue
		}
		switch binary.BigEndian.Uint16(b[:]) {
		case opACK:
			if want(binary.BigEndian.Uint16(b[2:])) {
				return true, nil
			}
		case opERROR:
			return false, errPeer{code: binary.BigEndian.Uint16(b[2:]), msg: strings.TrimRight(string(b[4:n]), "\x00")}
		}
	}
}
