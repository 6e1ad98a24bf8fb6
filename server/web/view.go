package web

import (
	"fmt"
	"html/template"
	"math"
	"strings"
	"time"

	"bty/server/store"
	"bty/wire"
)

// What the templates show, computed from the rows: progress, rates,
// durations, sizes.

// progressView is where an open flash is.
type progressView struct {
	Cycle   int64
	State   string // the cycle's: armed, offered, booted, planned
	Phase   string // the client's: writing, verifying, ...
	Written int64
	Total   int64
	Percent int           // -1 when the size is unknown or nothing was posted
	Rate    float64       // bytes per second since the write started; 0 unknown
	ETA     time.Duration // -1 unknown
	Quiet   time.Duration // since the latest progress post
}

// quietAfter: a flash with no progress post for this long is marked as
// silent (the client posts once a second while it writes).
const quietAfter = 30 * time.Second

func newProgress(c *store.Cycle, p store.Progress, now time.Time) *progressView {
	v := &progressView{Cycle: c.ID, State: c.State, Phase: p.Phase, Written: c.BytesWritten, Total: c.BytesTotal, Percent: -1, ETA: -1}
	if p.At.IsZero() {
		return v
	}
	v.Quiet = now.Sub(p.At)
	if v.Total > 0 {
		v.Percent = int(min(100, v.Written*100/v.Total))
	}
	if el := p.At.Sub(c.WriteStartedAt).Seconds(); !c.WriteStartedAt.IsZero() && el >= 1 && v.Written > 0 {
		v.Rate = float64(v.Written) / el
		if v.Total > v.Written && p.Phase == "writing" {
			v.ETA = time.Duration(float64(v.Total-v.Written) / v.Rate * float64(time.Second))
		}
	}
	return v
}

// Text is the progress in words: "42% · 118 MB/s · 1m20s left".
func (p *progressView) Text() string {
	if p == nil {
		return ""
	}
	var parts []string
	switch {
	case p.State != wire.CyclePlanned:
		parts = append(parts, stateWords[p.State])
	case p.Phase == "":
		parts = append(parts, "plan fetched, waiting for the write")
	case p.Percent >= 0 && p.Phase == "writing":
		parts = append(parts, fmt.Sprintf("%d%%", p.Percent))
	default:
		parts = append(parts, p.Phase)
	}
	if p.State == wire.CyclePlanned && p.Phase != "" {
		parts = append(parts, humanBytes(p.Written)+" written")
	}
	if p.Rate > 0 {
		parts = append(parts, humanRate(p.Rate))
	}
	if p.ETA >= 0 {
		parts = append(parts, shortDur(p.ETA)+" left")
	}
	if p.Quiet > quietAfter {
		parts = append(parts, "no word for "+shortDur(p.Quiet))
	}
	return strings.Join(parts, " · ")
}

var stateWords = map[string]string{
	wire.CycleArmed:   "armed: waits for the next boot",
	wire.CycleOffered: "booting the live environment",
	wire.CycleBooted:  "kernel fetched, starting",
	wire.CyclePlanned: "planned",
}

// step is one stamp of a cycle's timeline.
type step struct {
	Name  string
	At    time.Time
	Since time.Duration // since the step before
}

// cycleView is one row of a machine's timeline.
type cycleView struct {
	C        *store.Cycle
	Steps    []step
	Duration time.Duration // first stamp to end (or to now, while open)
	Rate     float64       // bytes per second of the write, for an ended flash
	Progress *progressView // an open flash
}

func newCycleView(c *store.Cycle, p store.Progress, now time.Time) cycleView {
	v := cycleView{C: c}
	var prev time.Time
	for _, s := range []struct {
		name string
		at   time.Time
	}{{"armed", c.CreatedAt}, {"offered", c.OfferedAt}, {"kernel", c.BootedAt}, {"plan", c.PlannedAt}, {"write", c.WriteStartedAt}, {c.State, c.EndedAt}} {
		if s.at.IsZero() {
			continue
		}
		st := step{Name: s.name, At: s.at}
		if !prev.IsZero() {
			st.Since = s.at.Sub(prev)
		}
		v.Steps = append(v.Steps, st)
		prev = s.at
	}
	end := c.EndedAt
	if end.IsZero() {
		end = now
		if c.Kind == wire.KindFlash {
			v.Progress = newProgress(c, p, now)
		}
	}
	v.Duration = took(c.Cause, c.CreatedAt, c.OfferedAt, end)
	if !c.EndedAt.IsZero() && !c.WriteStartedAt.IsZero() && c.BytesWritten > 0 {
		if el := c.EndedAt.Sub(c.WriteStartedAt).Seconds(); el > 0 {
			v.Rate = float64(c.BytesWritten) / el
		}
	}
	return v
}

// took is how long a cycle took: from its trigger (a reflash, a retry) to
// its end, or, for one a boot started, from the offer.
func took(cause string, created, offered, end time.Time) time.Duration {
	if cause == "boot" && !offered.IsZero() {
		return end.Sub(offered)
	}
	return end.Sub(created)
}

// humanBytes writes a size in binary units: "1.5 GiB".
func humanBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f, units := float64(n), []string{"KiB", "MiB", "GiB", "TiB", "PiB"}
	i := -1
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if f < 10 {
		return fmt.Sprintf("%.1f %s", f, units[i])
	}
	return fmt.Sprintf("%.0f %s", f, units[i])
}

// humanRate writes bytes per second in MB/s (decimal, as disks are sold).
func humanRate(bps float64) string {
	mb := bps / 1e6
	if mb < 10 {
		return fmt.Sprintf("%.1f MB/s", mb)
	}
	return fmt.Sprintf("%.0f MB/s", mb)
}

// shortDur writes a duration to the second: "1h2m", "3m4s", "5s", "0.4s".
func shortDur(d time.Duration) string {
	switch {
	case d < 0:
		return "-"
	case d < time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(math.Round(d.Hours()/24)))
}

// ago writes how long ago t was, relative to now.
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	if d < 5*time.Second {
		return "just now"
	}
	return shortDur(d.Truncate(time.Second)) + " ago"
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// stateClass is the CSS class of a machine or cycle state.
func stateClass(state string) string {
	switch state {
	case wire.StateCurrent, wire.CycleDone:
		return "ok"
	case wire.StateStale:
		return "warn"
	case wire.StateQuarantined, wire.CycleFailed:
		return "bad"
	case wire.StateFlashing, wire.StateArmed, wire.StateInventory, wire.CycleOffered, wire.CycleBooted, wire.CyclePlanned:
		return "busy"
	}
	return "quiet"
}

// attention reports whether an event of kind wants a person to acknowledge
// it: store.EventFilter.Attention's kinds.
func attention(kind string) bool {
	return strings.HasSuffix(kind, "failed") || kind == "machine.quarantined" || kind == "pxe.status.refused"
}

var funcs = template.FuncMap{
	"attention":  attention,
	"bytes":      humanBytes,
	"rate":       humanRate,
	"dur":        shortDur,
	"ago":        ago,
	"short":      short,
	"stateClass": stateClass,
	"hexhyp":     wire.HexHyp,
	"join":       strings.Join,
	"iso":        func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"stamp":      func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"deref": func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	},
	"derefTime": func(t *time.Time) time.Time {
		if t == nil {
			return time.Time{}
		}
		return *t
	},
	"dict": func(kv ...any) map[string]any {
		m := make(map[string]any, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	},
	"has": func(list []string, s string) bool {
		for _, x := range list {
			if x == s {
				return true
			}
		}
		return false
	},
}
