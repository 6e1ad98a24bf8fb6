// Command cachefan is bench/cache.sh's measurement: simulated machines
// download one image at once through a cold `bty serve --cache` from a
// rate-limited origin, against one download straight from the origin.
//
//	cachefan -bty BIN -dir DIR [-mib 1024] [-rate 64] [-machines 32]
//
//	origin (loopback, -rate MiB/s, counts requests and bytes) <-- bty serve --cache DIR/cache
//	  1. one download from the origin                              (the reference time)
//	  2. bty serve starts cold; -machines downloads of /cache/SHA/NAME at once
//	     (every 8th starts halfway, as a resumed download does)    (the fan-out time)
//	  3. the same again from the complete cache                    (what serving costs this host)
//
// Each download is read as a machine reads it (catalog.HTTPSource, asked
// again for the rest after a failed read) and compared byte for byte with
// the image. It prints the origin's requests and
// bytes, the times, their ratio, and bty serve's peak RSS, and fails when a
// download differs or the origin served the image more than once.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"bty/catalog"
	"bty/internal/testproc"
)

func main() {
	bty := flag.String("bty", "", "the bty binary (required)")
	dir := flag.String("dir", "", "work directory (required; its cache/ and state/ are replaced)")
	mib := flag.Int("mib", 1024, "the image's size in MiB")
	rate := flag.Int("rate", 64, "the origin's rate in MiB/s")
	machines := flag.Int("machines", 32, "simulated machines")
	flag.Parse()
	if *bty == "" || *dir == "" || *mib <= 0 || *rate <= 0 || *machines <= 0 {
		fmt.Fprintln(os.Stderr, "cachefan: -bty and -dir are required; -mib, -rate and -machines are positive (try -help)")
		os.Exit(2)
	}
	if err := run(*bty, *dir, *mib, *rate, *machines); err != nil {
		fmt.Fprintln(os.Stderr, "cachefan:", err)
		os.Exit(1)
	}
}

func run(bty, dir string, mib, rate, machines int) error {
	data := image(mib << 20)
	s := sha256.Sum256(data)
	sum := hex.EncodeToString(s[:])
	o := &origin{data: data, rate: int64(rate) << 20}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go http.Serve(ln, o)
	src := "http://" + ln.Addr().String() + "/big.img"

	start := time.Now()
	if err := download(src, 0, data); err != nil {
		return fmt.Errorf("the download from the origin: %w", err)
	}
	direct := time.Since(start)
	o.requests.Store(0)
	o.served.Store(0)

	for _, d := range []string{"cache", "state", "images"} {
		os.RemoveAll(filepath.Join(dir, d))
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	cat := filepath.Join(dir, "catalog.toml")
	toml := fmt.Sprintf("version = 1\n[[images]]\nname = \"big.img\"\nsrc = %q\nsha256 = %q\nsize_bytes = %d\n", src, sum, len(data))
	if err := os.WriteFile(cat, []byte(toml), 0o644); err != nil {
		return err
	}
	srv, err := serve(bty, dir, cat)
	if err != nil {
		return err
	}
	defer srv.stop()
	url := srv.url + "/cache/" + sum + "/big.img"

	start = time.Now()
	errs, took := fanOut(machines, func(i int) error {
		off := int64(0)
		if i%8 == 7 {
			off = int64(len(data)) / 2 // a resumed download asks for bytes not cached yet
		}
		return download(url, off, data)
	})
	fan := time.Since(start)
	// The same again from the complete cache: what serving the machines
	// costs this host, whatever the origin.
	start = time.Now()
	warmErrs, _ := fanOut(machines, func(int) error { return download(url, 0, data) })
	warm := time.Since(start)
	errs = append(errs, warmErrs...)
	rss := srv.peakRSS()

	fmt.Printf("image: %d MiB (sha256 %s), origin at %d MiB/s, %d machines, %d cores, load average %s\n",
		mib, sum[:12], rate, machines, runtime.NumCPU(), loadavg())
	fmt.Printf("one download from the origin:        %s\n", direct.Round(time.Millisecond))
	fmt.Printf("%d machines through a cold cache:    %s (first done %s, last %s)\n", machines, fan.Round(time.Millisecond),
		slices.Min(took).Round(time.Millisecond), slices.Max(took).Round(time.Millisecond))
	fmt.Printf("ratio fan-out / one download:        %.3f\n", fan.Seconds()/direct.Seconds())
	fmt.Printf("%d machines again, cache complete:   %s (the host's cost of serving them)\n", machines, warm.Round(time.Millisecond))
	fmt.Printf("origin: %d request(s), %d bytes served (the image is %d)\n", o.requests.Load(), o.served.Load(), len(data))
	fmt.Printf("bty serve peak RSS:                  %d MiB\n", rss>>20)
	bad := 0
	for i, err := range errs {
		if err != nil {
			fmt.Printf("machine %d: %v\n", i%machines, err)
			bad++
		}
	}
	fmt.Printf("downloads byte-exact:                %d of %d\n", len(errs)-bad, len(errs))
	if bad > 0 || o.requests.Load() != 1 || o.served.Load() != int64(len(data)) {
		return errors.New("a download differed, or the origin did not serve the image exactly once")
	}
	return nil
}

// fanOut runs get for machines 0..n-1 at once; it returns their errors and
// when each ended.
func fanOut(n int, get func(i int) error) ([]error, []time.Duration) {
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, n)
	took := make([]time.Duration, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = get(i)
			took[i] = time.Since(start)
		}()
	}
	wg.Wait()
	return errs, took
}

// image returns n bytes that differ from MiB to MiB.
func image(n int) []byte {
	block := make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(18, 18))
	for i := 0; i+8 <= len(block); i += 8 {
		binary.LittleEndian.PutUint64(block[i:], r.Uint64())
	}
	out := make([]byte, n)
	for off := 0; off < n; off += len(block) {
		copy(out[off:], block)
		if off+8 <= n {
			binary.LittleEndian.PutUint64(out[off:], uint64(off))
		}
	}
	return out
}

// origin serves the image with Range at rate bytes a second per answer,
// counting the requests and the bytes sent.
type origin struct {
	data     []byte
	rate     int64
	requests atomic.Int64
	served   atomic.Int64
}

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		o.requests.Add(1)
	}
	w.Header().Set("ETag", `"v1"`)
	w.Header().Set("Content-Type", "application/octet-stream")
	body := &throttled{r: bytes.NewReader(o.data), rate: o.rate, served: &o.served, start: time.Now()}
	http.ServeContent(w, r, "big.img", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), body)
}

// throttled reads at most rate bytes a second and counts what it reads.
type throttled struct {
	r      *bytes.Reader
	rate   int64
	served *atomic.Int64
	start  time.Time
	n      int64
}

func (t *throttled) Seek(off int64, whence int) (int64, error) { return t.r.Seek(off, whence) }

func (t *throttled) Read(p []byte) (int, error) {
	if len(p) > 64<<10 {
		p = p[:64<<10]
	}
	n, err := t.r.Read(p)
	t.n += int64(n)
	t.served.Add(int64(n))
	if d := time.Duration(float64(t.n)/float64(t.rate)*float64(time.Second)) - time.Since(t.start); d > 0 {
		time.Sleep(d)
	}
	return n, err
}

// download reads url from off on as a machine does and compares it with
// want[off:]. Like the flash engine, it asks again for the rest when a read
// fails (the client's 30 s stall timeout ends a request for bytes far ahead
// of the fill), up to 6 times in a row without a byte.
func download(url string, off int64, want []byte) error {
	src := &catalog.HTTPSource{URL: url}
	buf := make([]byte, 1<<20)
	pos, fails := off, 0
	for {
		got, err := read(src, pos, want, buf)
		pos += got
		if err == nil {
			return nil
		}
		if errors.Is(err, errDiffer) {
			return err
		}
		if got > 0 {
			fails = 0
		}
		if fails++; fails >= 6 {
			return fmt.Errorf("at byte %d: %w", pos, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

var errDiffer = errors.New("differ from the image")

// read reads src from pos on and compares it with want; it returns the
// bytes read.
func read(src *catalog.HTTPSource, pos int64, want, buf []byte) (int64, error) {
	rc, size, err := src.Open(context.Background(), pos)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	if size != int64(len(want)) {
		return 0, fmt.Errorf("size %d, want %d: %w", size, len(want), errDiffer)
	}
	start := pos
	for {
		n, err := rc.Read(buf)
		if n > 0 {
			if pos+int64(n) > int64(len(want)) || !bytes.Equal(buf[:n], want[pos:pos+int64(n)]) {
				return pos - start, fmt.Errorf("bytes %d to %d %w", pos, pos+int64(n), errDiffer)
			}
			pos += int64(n)
		}
		if err == io.EOF {
			if pos != int64(len(want)) {
				return pos - start, fmt.Errorf("ended at byte %d of %d", pos, len(want))
			}
			return pos - start, nil
		}
		if err != nil {
			return pos - start, err
		}
	}
}

// server is a running bty serve.
type server struct {
	cmd *exec.Cmd
	url string
}

var addrRE = regexp.MustCompile(`fleet server at (http://[0-9.:]+)/`)

// serve starts bty serve --cache in dir with the catalog cat (its log in
// dir/serve.log) and waits until it listens.
func serve(bty, dir, cat string) (*server, error) {
	cmd := exec.Command(bty, "serve", "--images", filepath.Join(dir, "images"), "--state", filepath.Join(dir, "state"),
		"--cache", filepath.Join(dir, "cache"), "--catalog", cat, "--listen", "127.0.0.1:0")
	testproc.DieWithTest(cmd)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd}
	logf, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		return nil, err
	}
	found := make(chan string, 1)
	var log strings.Builder
	var mu sync.Mutex
	go func() {
		defer logf.Close()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			fmt.Fprintln(logf, sc.Text())
			mu.Lock()
			log.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if m := addrRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case s.url = <-found:
	case <-time.After(time.Minute):
		s.stop()
		mu.Lock()
		defer mu.Unlock()
		return nil, fmt.Errorf("bty serve did not start:\n%s", log.String())
	}
	return s, nil
}

func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()
}

// peakRSS is the server's VmHWM in bytes.
func (s *server) peakRSS() int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb)
			return kb << 10
		}
	}
	return 0
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
