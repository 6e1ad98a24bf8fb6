// Command fleetload is bench/fleet.sh's load generator: simulated machines
// that boot against a fleet server (bty serve --state) as real ones do, and
// the latency of every request by route.
//
//	fleetload -url URL[,URL...] -token T -machines 5000 -over 1m
//	fleetload postgres      a throwaway PostgreSQL (fsync on); prints its URL, stops on SIGTERM
//
// Machine i starts at i*over/machines and then runs its life back to back:
// bootstrap, pxe (discovered), kernel, plan (inventory), inventory, bind
// (the operator's PATCH), bootstrap, pxe (the flash), kernel, plan (flash),
// progress, status done. Its requests go to the servers of -url in turn.
// Every answer is checked; anything else is an error. The report is a
// Markdown table (stdout) and JSON (-json FILE).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"bty/internal/pgtest"
	"bty/wire"
)

var routes = []string{"bootstrap", "pxe", "kernel", "plan", "inventory", "bind", "progress", "status"}

// recorder keeps the latencies and errors of every route.
type recorder struct {
	mu     sync.Mutex
	lat    map[string][]time.Duration
	errs   map[string]int
	first  []string // the first error messages
	failed int      // machines that did not finish
}

func (r *recorder) add(route string, d time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lat[route] = append(r.lat[route], d)
	if err != nil {
		r.errs[route]++
		if len(r.first) < 5 {
			r.first = append(r.first, err.Error())
		}
	}
}

var client = &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConns: 2048, MaxIdleConnsPerHost: 2048, IdleConnTimeout: time.Minute}}

// machine is one simulated machine.
type machine struct {
	urls  []string
	k     int
	token string
	mac   string
	rec   *recorder
}

// do sends one request to the next server and checks its status code.
func (m *machine) do(route string, want int, method, path, token, body string) (string, error) {
	url := m.urls[m.k%len(m.urls)] + path
	m.k++
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	start := time.Now()
	resp, err := client.Do(req)
	var b []byte
	if err == nil {
		b, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != want {
			err = fmt.Errorf("%s %s: %d %s, want %d", method, path, resp.StatusCode, strings.TrimSpace(string(b)), want)
		}
	}
	m.rec.add(route, time.Since(start), err)
	return string(b), err
}

func (m *machine) boot(want string) error {
	b, err := m.do("bootstrap", 200, "GET", "/pxe-bootstrap.ipxe", "", "")
	if err != nil {
		return err
	}
	i := strings.Index(b, "/pxe/${mac:hexhyp}")
	if i < 0 {
		return fmt.Errorf("bootstrap script %q", b)
	}
	chain := strings.TrimSpace(strings.Replace(b[i:], "${mac:hexhyp}", wire.HexHyp(m.mac), 1))
	s, err := m.do("pxe", 200, "GET", chain, "", "")
	if err == nil && !strings.Contains(s, want) {
		err = fmt.Errorf("%s: script %q, want %q", m.mac, s, want)
	}
	if err != nil {
		return err
	}
	_, err = m.do("kernel", 200, "HEAD", "/boot/vmlinuz?mac="+m.mac, "", "")
	return err
}

func (m *machine) plan(want wire.Mode) (wire.Plan, error) {
	b, err := m.do("plan", 200, "GET", "/pxe/"+m.mac+"/plan", "", "")
	if err != nil {
		return wire.Plan{}, err
	}
	p, err := wire.ParsePlan([]byte(b))
	if err == nil && (p.Mode != want || p.AgentToken == "") {
		err = fmt.Errorf("%s: plan %s, want %s with a token", m.mac, b, want)
	}
	return p, err
}

// life runs the machine's boots; the first error ends it.
func (m *machine) life(ref, sum string) error {
	hyp := wire.HexHyp(m.mac)
	if err := m.boot("bty.mac=" + m.mac); err != nil {
		return err
	}
	p, err := m.plan(wire.ModeInventory)
	if err != nil {
		return err
	}
	inv := `{"disks":[{"path":"/dev/sda","size":"500G","serial":"SER-` + hyp + `","tran":"sata"}],"lshw":{"id":"` + hyp + `"}}`
	if _, err := m.do("inventory", 204, "POST", "/pxe/"+m.mac+"/inventory", p.AgentToken, inv); err != nil {
		return err
	}
	bind := `{"bty_image_ref":"` + ref + `","boot_mode":"bty-flash-once","target_disk_serial":"SER-` + hyp + `"}`
	if _, err := m.do("bind", 200, "PATCH", "/machines/"+m.mac, m.token, bind); err != nil {
		return err
	}
	if err := m.boot("flash "); err != nil {
		return err
	}
	if p, err = m.plan(wire.ModeFlash); err != nil {
		return err
	}
	if _, err := m.do("progress", 204, "POST", "/pxe/"+m.mac+"/progress", p.AgentToken, fmt.Sprintf(`{"plan_id":%d,"phase":"writing","bytes_written":0,"bytes_total":1048576}`, p.PlanID)); err != nil {
		return err
	}
	_, err = m.do("status", 204, "POST", "/pxe/"+m.mac+"/status", p.AgentToken, fmt.Sprintf(`{"status":"done","plan_id":%d,"sha256":"%s","bytes_written":1048576}`, p.PlanID, sum))
	return err
}

// Result is the JSON report.
type Result struct {
	Machines int           `json:"machines"`
	Failed   int           `json:"failed_machines"`
	Seconds  float64       `json:"seconds"`
	Requests int           `json:"requests"`
	Errors   int           `json:"errors"`
	Routes   []RouteResult `json:"routes"`
	First    []string      `json:"first_errors,omitempty"`
}

// RouteResult is one route's numbers, latencies in milliseconds.
type RouteResult struct {
	Route    string  `json:"route"`
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	P50      float64 `json:"p50_ms"`
	P99      float64 `json:"p99_ms"`
	Max      float64 `json:"max_ms"`
}

func quantile(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	i := int(q*float64(len(ds))+0.5) - 1
	return float64(ds[min(max(i, 0), len(ds)-1)].Microseconds()) / 1000
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "postgres" {
		postgres()
		return
	}
	urls := flag.String("url", "", "the servers' base URLs, comma-separated")
	token := flag.String("token", "", "an API token (for the bind)")
	n := flag.Int("machines", 5000, "simulated machines")
	over := flag.Duration("over", time.Minute, "the machines start evenly within this time")
	prefix := flag.Int("prefix", 1, "the MACs are 02:PP:xx:xx:xx:xx with this PP (0-255): runs on one database need different ones")
	out := flag.String("json", "", "write the results as JSON to this file")
	flag.Parse()
	if *urls == "" || *token == "" {
		fmt.Fprintln(os.Stderr, "fleetload: -url and -token are required")
		os.Exit(2)
	}
	servers := strings.Split(*urls, ",")
	var imgs []wire.ImageEntry
	resp, err := client.Get(servers[0] + "/images")
	if err == nil {
		err = json.NewDecoder(resp.Body).Decode(&imgs)
		resp.Body.Close()
	}
	if err != nil || len(imgs) == 0 || imgs[0].SHA256 == "" {
		fmt.Fprintf(os.Stderr, "fleetload: %s/images: %v %+v: want an image with its digest\n", servers[0], err, imgs)
		os.Exit(1)
	}
	rec := &recorder{lat: map[string][]time.Duration{}, errs: map[string]int{}}
	start := time.Now()
	var wg sync.WaitGroup
	for i := range *n {
		at := start.Add(time.Duration(int64(*over) * int64(i) / int64(*n)))
		time.Sleep(time.Until(at))
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := &machine{urls: servers, k: i, token: *token, rec: rec,
				mac: fmt.Sprintf("02:%02x:%02x:%02x:%02x:%02x", *prefix, i>>24&0xff, i>>16&0xff, i>>8&0xff, i&0xff)}
			if err := m.life(imgs[0].Ref, imgs[0].SHA256); err != nil {
				rec.mu.Lock()
				rec.failed++
				rec.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res := Result{Machines: *n, Failed: rec.failed, Seconds: time.Since(start).Seconds(), First: rec.first}
	fmt.Printf("| route | requests | errors | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|---:|\n")
	for _, r := range routes {
		ds := rec.lat[r]
		slices.Sort(ds)
		rr := RouteResult{Route: r, Requests: len(ds), Errors: rec.errs[r], P50: quantile(ds, 0.5), P99: quantile(ds, 0.99), Max: quantile(ds, 1)}
		res.Routes = append(res.Routes, rr)
		res.Requests += rr.Requests
		res.Errors += rr.Errors
		fmt.Printf("| %s | %d | %d | %.1f | %.1f | %.1f |\n", r, rr.Requests, rr.Errors, rr.P50, rr.P99, rr.Max)
	}
	fmt.Printf("\n%d machines, %d requests in %.1f s (%.0f/s), %d errors, %d machines did not finish\n",
		res.Machines, res.Requests, res.Seconds, float64(res.Requests)/res.Seconds, res.Errors, res.Failed)
	for _, e := range res.First {
		fmt.Println("error:", e)
	}
	if *out != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(*out, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "fleetload:", err)
			os.Exit(1)
		}
	}
	if res.Errors > 0 || res.Failed > 0 {
		os.Exit(1)
	}
}

// postgres runs a throwaway PostgreSQL with its default durability until
// SIGTERM or SIGINT, and prints a database's URL when it is ready.
func postgres() {
	srv, err := pgtest.Start(true)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleetload postgres:", err)
		os.Exit(1)
	}
	defer srv.Stop()
	dsn, err := srv.NewDatabase()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleetload postgres:", err)
		return
	}
	fmt.Println(dsn)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
}
