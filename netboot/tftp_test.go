package netboot

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// startTFTP serves root on a loopback port until the test ends and returns
// its address and the events it reported.
func startTFTP(t *testing.T, root string, timeout time.Duration) (*net.UDPAddr, func() []Event) {
	t.Helper()
	var mu sync.Mutex
	var events []Event
	s, err := ListenTFTP(TFTPConfig{Addr: "127.0.0.1:0", Root: root, Timeout: timeout, Event: func(e Event) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s.Addr(), func() []Event {
		mu.Lock()
		defer mu.Unlock()
		return append([]Event(nil), events...)
	}
}

// randomFile writes n pseudo-random bytes to dir/name and returns them.
func randomFile(t testing.TB, dir, name string, n int, seed uint64) []byte {
	t.Helper()
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// tftpClient is a test client: RFC 1350 with the RFC 2347 options and the
// RFC 7440 window (it acknowledges the last block of a window, and the last
// block in order as soon as it sees a gap).
type tftpClient struct {
	timeout time.Duration // before the last packet is sent again
	dally   time.Duration // after the last block, to acknowledge it again if the server repeats it
}

// tftpResult is what a transfer brought back.
type tftpResult struct {
	data  []byte
	oack  map[string]string // nil: the server sent no OACK
	first uint16            // opcode of the server's first answer
}

// tftpError is an ERROR packet from the server.
type tftpError struct {
	code uint16
	msg  string
}

func (e tftpError) Error() string { return fmt.Sprintf("TFTP error %d: %s", e.code, e.msg) }

func (c tftpClient) get(server *net.UDPAddr, op uint16, file, mode string, opts ...string) (tftpResult, error) {
	var res tftpResult
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return res, err
	}
	defer conn.Close()
	// Room for a whole window of large blocks: loopback drops what the
	// socket cannot hold, and firmware's NICs have rings for that.
	conn.SetReadBuffer(4 << 20)
	req := binary.BigEndian.AppendUint16(nil, op)
	for _, s := range append([]string{file, mode}, opts...) {
		req = append(append(req, s...), 0)
	}
	blksize, window := 512, 1
	last := req // the packet to send again on a timeout
	to := server
	var peer *net.UDPAddr
	expect := uint16(1)
	inWindow := 0
	deadline := time.Now().Add(60 * time.Second)
	buf := make([]byte, 65536)
	ack := func(n uint16) {
		last = binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, opACK), n)
		conn.WriteToUDP(last, to)
	}
	conn.WriteToUDP(req, to)
	for time.Now().Before(deadline) {
		conn.SetReadDeadline(time.Now().Add(c.timeout))
		n, from, err := conn.ReadFromUDP(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			conn.WriteToUDP(last, to)
			continue
		}
		if err != nil {
			return res, err
		}
		if peer == nil {
			peer, to = from, from
		} else if from.String() != peer.String() {
			continue
		}
		p := buf[:n]
		opcode := binary.BigEndian.Uint16(p)
		if res.first == 0 {
			res.first = opcode
		}
		switch opcode {
		case opERROR:
			return res, tftpError{binary.BigEndian.Uint16(p[2:]), strings.TrimRight(string(p[4:]), "\x00")}
		case opOACK:
			if res.oack == nil {
				res.oack = map[string]string{}
				f := strings.Split(strings.TrimSuffix(string(p[2:]), "\x00"), "\x00")
				for i := 0; i+1 < len(f); i += 2 {
					res.oack[f[i]] = f[i+1]
				}
				fmt.Sscan(res.oack["blksize"], &blksize)
				fmt.Sscan(res.oack["windowsize"], &window)
			}
			ack(0)
		case opDATA:
			b := binary.BigEndian.Uint16(p[2:])
			if b != expect {
				// A gap or a repeat: say where we are.
				ack(expect - 1)
				inWindow = 0
				continue
			}
			res.data = append(res.data, p[4:]...)
			expect++
			inWindow++
			if len(p)-4 < blksize {
				ack(b)
				c.dallyOn(conn, peer, b)
				return res, nil
			}
			if inWindow == window {
				ack(b)
				inWindow = 0
			}
		}
	}
	return res, errors.New("transfer timed out")
}

// dallyOn acknowledges the final block again while the server repeats it.
func (c tftpClient) dallyOn(conn *net.UDPConn, peer *net.UDPAddr, b uint16) {
	if c.dally == 0 {
		return
	}
	end := time.Now().Add(c.dally)
	buf := make([]byte, 65536)
	for time.Now().Before(end) {
		conn.SetReadDeadline(end)
		if _, _, err := conn.ReadFromUDP(buf); err != nil {
			return
		}
		conn.WriteToUDP(binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, opACK), b), peer)
	}
}

var fastClient = tftpClient{timeout: 200 * time.Millisecond}

// TestTFTPOptions: the options a client asks for are acknowledged within
// bty's limits, unknown or invalid ones are ignored, and the file arrives
// byte for byte with every negotiated block and window size, including a
// file that ends on a block boundary and one whose block numbers wrap.
func TestTFTPOptions(t *testing.T) {
	dir := t.TempDir()
	file := randomFile(t, dir, "ipxe.efi", 300_000, 1)
	even := randomFile(t, dir, "even.bin", 512*8, 2)
	wrap := randomFile(t, dir, "wrap.bin", 8*70_000+3, 3)
	addr, _ := startTFTP(t, dir, 0)
	tests := []struct {
		name  string
		file  string
		opts  []string
		want  []byte
		oack  map[string]string
		first uint16
	}{
		{"no options: plain RFC 1350", "ipxe.efi", nil, file, nil, opDATA},
		{"blksize and tsize", "ipxe.efi", []string{"blksize", "1468", "tsize", "0"}, file, map[string]string{"blksize": "1468", "tsize": "300000"}, opOACK},
		{"option names in any case", "ipxe.efi", []string{"BlkSize", "1024", "TSIZE", "0"}, file, map[string]string{"blksize": "1024", "tsize": "300000"}, opOACK},
		{"blksize above the largest datagram", "ipxe.efi", []string{"blksize", "70000"}, file, map[string]string{"blksize": "65464"}, opOACK},
		{"blksize below 8 is ignored", "ipxe.efi", []string{"blksize", "4"}, file, nil, opDATA},
		{"windowsize", "ipxe.efi", []string{"blksize", "1432", "windowsize", "8"}, file, map[string]string{"blksize": "1432", "windowsize": "8"}, opOACK},
		{"windowsize capped", "ipxe.efi", []string{"windowsize", "1000"}, file, map[string]string{"windowsize": "64"}, opOACK},
		{"timeout", "ipxe.efi", []string{"timeout", "3"}, file, map[string]string{"timeout": "3"}, opOACK},
		{"unknown option ignored", "ipxe.efi", []string{"multicast", "", "tsize", "0"}, file, map[string]string{"tsize": "300000"}, opOACK},
		{"leading slash", `/ipxe.efi`, nil, file, nil, opDATA},
		{"backslash", `\ipxe.efi`, nil, file, nil, opDATA},
		{"file ends on a block boundary", "even.bin", nil, even, nil, opDATA},
		{"block numbers wrap past 65535", "wrap.bin", []string{"blksize", "8", "windowsize", "64"}, wrap, map[string]string{"blksize": "8", "windowsize": "64"}, opOACK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := fastClient.get(addr, opRRQ, tt.file, "octet", tt.opts...)
			if err != nil {
				t.Fatalf("get %s %v: %v", tt.file, tt.opts, err)
			}
			if res.first != tt.first {
				t.Errorf("first answer: opcode %d, want %d", res.first, tt.first)
			}
			if diff := cmp.Diff(tt.oack, res.oack); diff != "" {
				t.Errorf("OACK (-want +got):\n%s", diff)
			}
			if !bytes.Equal(res.data, tt.want) {
				t.Errorf("got %d bytes, want the %d bytes of %s", len(res.data), len(tt.want), tt.file)
			}
		})
	}
}

// TestTFTPRefusals: writes, missing files, names that climb out of the
// root, links that lead out, directories and unknown modes get an ERROR
// packet with the right code, and nothing outside the root is sent.
func TestTFTPRefusals(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "boot")
	os.Mkdir(root, 0o755)
	os.Mkdir(filepath.Join(root, "sub"), 0o755)
	os.WriteFile(filepath.Join(base, "secret"), []byte("outside"), 0o644)
	randomFile(t, root, "ipxe.efi", 1000, 4)
	os.Symlink(filepath.Join(base, "secret"), filepath.Join(root, "out-abs"))
	os.Symlink("../secret", filepath.Join(root, "out-rel"))
	os.Symlink("ipxe.efi", filepath.Join(root, "in-link"))
	addr, events := startTFTP(t, root, 0)
	tests := []struct {
		name string
		op   uint16
		file string
		mode string
		code uint16
	}{
		{"write request", opWRQ, "new.bin", "octet", errAccess},
		{"missing file", opRRQ, "nope.efi", "octet", errNotFound},
		{"dot-dot", opRRQ, "../secret", "octet", errAccess},
		{"dot-dot inside a path", opRRQ, "sub/../../secret", "octet", errAccess},
		{"absolute path stays under the root", opRRQ, filepath.Join(base, "secret"), "octet", errNotFound},
		{"absolute symlink out", opRRQ, "out-abs", "octet", errAccess},
		{"relative symlink out", opRRQ, "out-rel", "octet", errAccess},
		{"directory", opRRQ, "sub", "octet", errNotFound},
		{"mail mode", opRRQ, "ipxe.efi", "mail", errIllegalOp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := fastClient.get(addr, tt.op, tt.file, tt.mode)
			var te tftpError
			if !errors.As(err, &te) {
				t.Fatalf("%s %q: got %d bytes, err %v; want TFTP error %d", tt.name, tt.file, len(res.data), err, tt.code)
			}
			if te.code != tt.code {
				t.Errorf("%s %q: %v, want code %d", tt.name, tt.file, te, tt.code)
			}
		})
	}
	t.Run("symlink inside the root", func(t *testing.T) {
		res, err := fastClient.get(addr, opRRQ, "in-link", "octet")
		if err != nil || len(res.data) != 1000 {
			t.Errorf("in-link: %d bytes, %v; want the 1000 bytes of ipxe.efi", len(res.data), err)
		}
	})
	var refusals int
	for _, e := range events() {
		if e.Kind == KindTFTPError {
			refusals++
		}
	}
	if refusals < len(tests) {
		t.Errorf("%d tftp-error events for %d refusals: %v", refusals, len(tests), events())
	}
}

// TestTFTPNetascii: netascii mode converts line ends (RFC 764).
func TestTFTPNetascii(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("one\ntwo\rthree"), 0o644)
	addr, _ := startTFTP(t, dir, 0)
	res, err := fastClient.get(addr, opRRQ, "a.txt", "netascii", "tsize", "0")
	want := "one\r\ntwo\r\x00three"
	if err != nil || string(res.data) != want || res.oack["tsize"] != fmt.Sprint(len(want)) {
		t.Errorf("netascii a.txt = %q (tsize %s), %v; want %q (tsize %d)", res.data, res.oack["tsize"], err, want, len(want))
	}
}

// TestTFTPClientRejectsOptions: a client that answers the OACK with an
// ERROR ends the transfer, and the server reports it.
func TestTFTPClientRejectsOptions(t *testing.T) {
	dir := t.TempDir()
	randomFile(t, dir, "f", 100, 5)
	addr, events := startTFTP(t, dir, 50*time.Millisecond)
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.WriteToUDP([]byte("\x00\x01f\x00octet\x00blksize\x001024\x00"), addr)
	buf := make([]byte, 1500)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, from, err := conn.ReadFromUDP(buf)
	if err != nil || binary.BigEndian.Uint16(buf[:n]) != opOACK {
		t.Fatalf("first answer %q, %v; want an OACK", buf[:n], err)
	}
	conn.WriteToUDP(errorPacket(errOption, "blksize not acceptable"), from)
	for range 100 {
		for _, e := range events() {
			if e.Kind == KindTFTPError && strings.Contains(e.Text, "client sent error 8") {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("no event for the client's error; events: %v", events())
}

// lossyRelay forwards UDP between TFTP clients and a server and drops every
// nth packet in each direction, so requests, OACKs, data and ACKs are all
// lost now and then. Clients see the relay's one port as the server.
type lossyRelay struct {
	front   *net.UDPConn
	server  *net.UDPAddr
	nth     int64
	up      atomic.Int64 // client -> server packets seen
	down    atomic.Int64
	dropped atomic.Int64
	mu      sync.Mutex
	legs    map[string]*relayLeg
}

type relayLeg struct {
	back *net.UDPConn
	tid  atomic.Pointer[net.UDPAddr] // the server's transfer port, once known
}

func newLossyRelay(t *testing.T, server *net.UDPAddr, nth int64) *net.UDPAddr {
	front, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &lossyRelay{front: front, server: server, nth: nth, legs: map[string]*relayLeg{}}
	t.Cleanup(func() {
		front.Close()
		r.mu.Lock()
		for _, l := range r.legs {
			l.back.Close()
		}
		r.mu.Unlock()
		t.Logf("relay dropped %d of %d packets", r.dropped.Load(), r.up.Load()+r.down.Load())
	})
	go r.run()
	return front.LocalAddr().(*net.UDPAddr)
}

func (r *lossyRelay) drop(n *atomic.Int64) bool {
	if n.Add(1)%r.nth == 0 {
		r.dropped.Add(1)
		return true
	}
	return false
}

func (r *lossyRelay) run() {
	buf := make([]byte, 65536)
	for {
		n, client, err := r.front.ReadFromUDP(buf)
		if err != nil {
			return
		}
		r.mu.Lock()
		leg := r.legs[client.String()]
		if leg == nil {
			back, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				r.mu.Unlock()
				return
			}
			leg = &relayLeg{back: back}
			r.legs[client.String()] = leg
			go r.back(leg, client)
		}
		r.mu.Unlock()
		if r.drop(&r.up) {
			continue
		}
		to := r.server
		if tid := leg.tid.Load(); tid != nil {
			to = tid
		}
		leg.back.WriteToUDP(buf[:n], to)
	}
}

func (r *lossyRelay) back(leg *relayLeg, client *net.UDPAddr) {
	buf := make([]byte, 65536)
	for {
		n, from, err := leg.back.ReadFromUDP(buf)
		if err != nil {
			return
		}
		leg.tid.CompareAndSwap(nil, from)
		if r.drop(&r.down) {
			continue
		}
		r.front.WriteToUDP(buf[:n], client)
	}
}

// TestTFTPLostPackets: with every 7th packet lost in each direction
// (requests, OACKs, data and ACKs alike), transfers with and without a
// window still arrive byte for byte.
func TestTFTPLostPackets(t *testing.T) {
	dir := t.TempDir()
	file := randomFile(t, dir, "ipxe.efi", 100_000, 6)
	addr, _ := startTFTP(t, dir, 50*time.Millisecond)
	lossy := tftpClient{timeout: 120 * time.Millisecond, dally: 500 * time.Millisecond}
	for _, opts := range [][]string{
		{"blksize", "1024", "tsize", "0"},
		{"blksize", "1468", "windowsize", "8"},
		nil,
	} {
		t.Run(fmt.Sprint(opts), func(t *testing.T) {
			relay := newLossyRelay(t, addr, 7)
			res, err := lossy.get(relay, opRRQ, "ipxe.efi", "octet", opts...)
			if err != nil {
				t.Fatalf("get over a lossy path %v: %v", opts, err)
			}
			if !bytes.Equal(res.data, file) {
				t.Errorf("got %d bytes over a lossy path, want the %d bytes of ipxe.efi", len(res.data), len(file))
			}
		})
	}
}

// TestTFTPConcurrentClients: 16 clients at once, each fetching its own
// file with its own options, each byte for byte.
func TestTFTPConcurrentClients(t *testing.T) {
	dir := t.TempDir()
	const clients = 16
	files := make([][]byte, clients)
	for i := range files {
		files[i] = randomFile(t, dir, fmt.Sprintf("f%d", i), 1<<20+i*977, uint64(10+i))
	}
	addr, events := startTFTP(t, dir, 0)
	var wg sync.WaitGroup
	errs := make([]error, clients)
	for i := range clients {
		wg.Go(func() {
			opts := []string{"blksize", fmt.Sprint(512 + 64*i), "tsize", "0", "windowsize", fmt.Sprint(1 + i%8)}
			res, err := fastClient.get(addr, opRRQ, fmt.Sprintf("f%d", i), "octet", opts...)
			switch {
			case err != nil:
				errs[i] = err
			case !bytes.Equal(res.data, files[i]):
				errs[i] = fmt.Errorf("got %d bytes, want %d", len(res.data), len(files[i]))
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("client %d: %v", i, err)
		}
	}
	// The server reports a transfer when the final ACK arrives, which may
	// be after the client has returned.
	sent := func() (n int) {
		for _, e := range events() {
			if e.Kind == KindTFTP {
				n++
			}
		}
		return n
	}
	for i := 0; i < 100 && sent() < clients; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if n := sent(); n != clients {
		t.Errorf("%d tftp events for %d transfers", n, clients)
	}
}

// TestTFTPRealClients: curl and busybox tftp, which firmware-like clients
// imitate, fetch a file byte for byte.
func TestTFTPRealClients(t *testing.T) {
	dir := t.TempDir()
	file := randomFile(t, dir, "undionly.kpxe", 3<<20+5, 7)
	addr, _ := startTFTP(t, dir, 0)
	for _, c := range []struct {
		tool string
		args []string
	}{
		{"curl", []string{"-sS", "--tftp-blksize", "1468", "-o", "OUT", fmt.Sprintf("tftp://%s/undionly.kpxe", addr)}},
		{"busybox", []string{"tftp", "-g", "-b", "1432", "-r", "undionly.kpxe", "-l", "OUT", "127.0.0.1", fmt.Sprint(addr.Port)}},
	} {
		t.Run(c.tool, func(t *testing.T) {
			if _, err := exec.LookPath(c.tool); err != nil {
				t.Skipf("%s not installed (apt-get install %s)", c.tool, c.tool)
			}
			out := filepath.Join(t.TempDir(), "out")
			args := make([]string, len(c.args))
			for i, a := range c.args {
				args[i] = strings.ReplaceAll(a, "OUT", out)
			}
			if msg, err := exec.Command(c.tool, args...).CombinedOutput(); err != nil {
				t.Fatalf("%s %v: %v\n%s", c.tool, args, err, msg)
			}
			got, _ := os.ReadFile(out)
			if !bytes.Equal(got, file) {
				t.Errorf("%s got %d bytes, want the %d bytes of undionly.kpxe", c.tool, len(got), len(file))
			}
		})
	}
}

// BenchmarkTFTP measures a transfer over loopback with the test client:
// go test ./netboot -run '^$' -bench TFTP -benchtime 5x
func BenchmarkTFTP(b *testing.B) {
	dir := b.TempDir()
	file := randomFile(b, dir, "big", 8<<20, 9)
	s, err := ListenTFTP(TFTPConfig{Addr: "127.0.0.1:0", Root: dir})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx)
	for _, opts := range [][]string{nil, {"blksize", "1468"}, {"blksize", "1468", "windowsize", "4"}, {"blksize", "1468", "windowsize", "16"}} {
		b.Run(strings.Join(opts, "="), func(b *testing.B) {
			b.SetBytes(int64(len(file)))
			for b.Loop() {
				res, err := fastClient.get(s.Addr(), opRRQ, "big", "octet", opts...)
				if err != nil || len(res.data) != len(file) {
					b.Fatalf("%v, %d bytes", err, len(res.data))
				}
			}
		})
	}
}
