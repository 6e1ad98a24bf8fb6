package server

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"

	"bty/server/store"
	"bty/wire"
)

// durationBuckets are the flash duration histogram's upper bounds, seconds:
// from a small image on a fast disk to a large one over a slow link.
var durationBuckets = []float64{30, 60, 120, 300, 600, 1200, 1800, 3600, 7200}

// metrics counts what this process saw since it started (Prometheus sums
// over instances and handles restarts); the machine gauges come from the
// store at each scrape.
type metrics struct {
	mu        sync.Mutex
	requests  map[[2]string]int64 // {route, code}
	cycles    map[[2]string]int64 // {kind, result}
	durCounts []int64
	durSum    float64
	durN      int64
	bytes     int64
	powerRuns map[string]int64
}

func newMetrics() *metrics {
	return &metrics{requests: map[[2]string]int64{}, cycles: map[[2]string]int64{}, durCounts: make([]int64, len(durationBuckets)), powerRuns: map[string]int64{}}
}

func (m *metrics) request(route string, code int) {
	m.mu.Lock()
	m.requests[[2]string{route, fmt.Sprint(code)}]++
	m.mu.Unlock()
}

// cycleEnded counts an ended cycle; a done flash adds its duration (plan to
// done) and bytes.
func (m *metrics) cycleEnded(c *store.Cycle) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cycles[[2]string{c.Kind, c.State}]++
	if c.Kind != wire.KindFlash || c.State != wire.CycleDone || c.PlannedAt.IsZero() {
		return
	}
	d := c.EndedAt.Sub(c.PlannedAt).Seconds()
	for i, b := range durationBuckets {
		if d <= b {
			m.durCounts[i]++
		}
	}
	m.durSum += d
	m.durN++
	m.bytes += c.BytesWritten
}

// countEnded counts c as ended once tx commits: a transaction that is run
// again (a conflict on PostgreSQL) counts once.
func (s *Server) countEnded(tx *store.Tx, c *store.Cycle) {
	ended := *c
	tx.OnCommit(func() { s.metrics.cycleEnded(&ended) })
}

func (m *metrics) power(ok bool) {
	m.mu.Lock()
	m.powerRuns[map[bool]string{true: "ok", false: "failed"}[ok]]++
	m.mu.Unlock()
}

// serveMetrics answers GET /metrics in Prometheus' text format.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	states := map[string]int{}
	for _, st := range []string{wire.StateQuarantined, wire.StateArmed, wire.StateFlashing, wire.StateInventory, wire.StateCurrent, wire.StateStale, wire.StateUnbound, wire.StateIdle} {
		states[st] = 0
	}
	images, err := s.images.byRef(r.Context())
	if err != nil {
		s.writeErr(w, err)
		return
	}
	err = s.opt.Store.View(r.Context(), func(tx *store.Tx) error {
		ms, err := tx.Machines("")
		if err != nil {
			return err
		}
		cycles, err := tx.LatestCycles()
		if err != nil {
			return err
		}
		for _, m := range ms {
			states[machineState(m, cycles[m.MAC], images[m.ImageRef].SHA256)]++
		}
		return nil
	})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	var b strings.Builder
	help := func(name, typ, text string) { fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, typ) }
	help("bty_machines", "gauge", "Machines by state.")
	for _, st := range sortedKeys(states) {
		fmt.Fprintf(&b, "bty_machines{state=%q} %d\n", st, states[st])
	}
	m := s.metrics
	m.mu.Lock()
	defer m.mu.Unlock()
	help("bty_cycles_total", "counter", "Flash and inventory cycles ended, by kind and result (done, failed, superseded).")
	for _, kind := range []string{wire.KindFlash, wire.KindInventory} {
		for _, res := range []string{wire.CycleDone, wire.CycleFailed, wire.CycleSuperseded} {
			fmt.Fprintf(&b, "bty_cycles_total{kind=%q,result=%q} %d\n", kind, res, m.cycles[[2]string{kind, res}])
		}
	}
	help("bty_flash_duration_seconds", "histogram", "Time from the plan to done of each successful flash.")
	for i, le := range durationBuckets {
		fmt.Fprintf(&b, "bty_flash_duration_seconds_bucket{le=\"%g\"} %d\n", le, m.durCounts[i])
	}
	fmt.Fprintf(&b, "bty_flash_duration_seconds_bucket{le=\"+Inf\"} %d\nbty_flash_duration_seconds_sum %g\nbty_flash_duration_seconds_count %d\n", m.durN, m.durSum, m.durN)
	help("bty_flash_bytes_total", "counter", "Image bytes written by successful flashes.")
	fmt.Fprintf(&b, "bty_flash_bytes_total %d\n", m.bytes)
	help("bty_power_actions_total", "counter", "Power driver runs by result.")
	for _, res := range []string{"ok", "failed"} {
		fmt.Fprintf(&b, "bty_power_actions_total{result=%q} %d\n", res, m.powerRuns[res])
	}
	help("bty_http_requests_total", "counter", "HTTP requests by route and status code.")
	keys := make([][2]string, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+keys[i][1] < keys[j][0]+keys[j][1] })
	for _, k := range keys {
		fmt.Fprintf(&b, "bty_http_requests_total{route=%q,code=%q} %d\n", k[0], k[1], m.requests[k])
	}
	if s.cache != nil {
		s.cache.metrics(&b, help)
	}
	if s.opt.Catalog != nil {
		s.opt.Catalog.WriteMetrics(&b)
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write([]byte(b.String()))
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
