package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"bty/catalog"
	"bty/flash"
	"bty/units"
)

// report prints the progress and the result of a headless flash: one refreshed
// line on stderr when it is a terminal, or JSON lines on stdout with --json (the
// schema is in README.md).
type report struct {
	e    env
	json bool
	tty  bool
	mu   sync.Mutex
	last int // length of the last progress line, to blank it
}

func newReport(e env, asJSON bool) *report {
	return &report{e: e, json: asJSON, tty: isTerminal(e.stderr)}
}

// progressLine is the JSON form of flash.Progress.
type progressLine struct {
	Type        string  `json:"type"` // "progress"
	Phase       string  `json:"phase"`
	SourceBytes int64   `json:"source_bytes"`
	SourceTotal int64   `json:"source_total"`
	Written     int64   `json:"written"`
	Zeroed      int64   `json:"zeroed"`
	TargetRead  int64   `json:"target_read,omitempty"`
	Skipped     int64   `json:"skipped,omitempty"`
	Verified    int64   `json:"verified"`
	ImageSize   int64   `json:"image_size"`
	Rate        float64 `json:"bytes_per_second"`
	ETA         float64 `json:"eta_seconds"`
}

// resultLine is the last JSON line of a run. A failed run fills in what was
// known when it stopped.
type resultLine struct {
	Type           string   `json:"type"` // "result"
	OK             bool     `json:"ok"`
	Image          string   `json:"image,omitempty"`
	Target         string   `json:"target,omitempty"`
	Format         string   `json:"format,omitempty"`
	SHA256         string   `json:"sha256,omitempty"`
	SHA256Skipped  bool     `json:"sha256_skipped"`  // not hashed: a raw image with no expected digest
	SHA256Expected *string  `json:"sha256_expected"` // null: no digest to check against
	SHA256Source   *string  `json:"sha256_source"`   // sidecar, catalog, flag, registry, plan; null
	SourceBytes    int64    `json:"source_bytes,omitempty"`
	ImageSize      int64    `json:"image_size,omitempty"`
	Written        int64    `json:"bytes_written"`
	Zeroed         int64    `json:"bytes_zeroed"`
	TargetRead     int64    `json:"bytes_read_from_target,omitempty"` // --delta
	Skipped        int64    `json:"bytes_skipped,omitempty"`          // --delta: already on the target
	Fetched        int64    `json:"bytes_fetched,omitempty"`          // --delta from a block store
	FetchedBlocks  int64    `json:"blocks_fetched,omitempty"`
	Seconds        float64  `json:"seconds"`
	MBps           float64  `json:"mb_per_s"`
	Verified       bool     `json:"verified"`
	GPTRelocated   bool     `json:"gpt_relocated,omitempty"`
	TargetState    string   `json:"target_state,omitempty"` // untouched, no_partition_table, written
	Warnings       []string `json:"warnings,omitempty"`
	Error          string   `json:"error,omitempty"`
	ExitCode       int      `json:"exit_code"`
}

// flashRun is what a headless flash knows so far, for its result: filled in as
// it goes, so that a failure reports what was known when it stopped.
type flashRun struct {
	image, target string
	targetKnown   bool                 // target is the resolved device or file
	want          string               // the expected sha256, "" when none
	wantFrom      catalog.DigestSource // where want comes from
	res           *flash.Result        // once Flash returned, also on failure
}

func (r *report) emit(v any) {
	b, _ := json.Marshal(v)
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.e.stdout, "%s\n", b)
}

func (r *report) progress(p flash.Progress) {
	if r.json {
		r.emit(progressLine{Type: "progress", Phase: string(p.Phase), SourceBytes: p.SourceBytes, SourceTotal: p.SourceTotal,
			Written: p.Written, Zeroed: p.Zeroed, TargetRead: p.TargetRead, Skipped: p.Skipped, Verified: p.Verified, ImageSize: p.ImageSize, Rate: p.Rate, ETA: p.ETA.Seconds()})
		return
	}
	if !r.tty {
		return
	}
	r.line(progressText(p))
}

// line rewrites the terminal's progress line.
func (r *report) line(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pad := max(0, r.last-len(s))
	fmt.Fprintf(r.e.stderr, "\r%s%s", s, strings.Repeat(" ", pad))
	r.last = len(s)
}

func (r *report) endLine() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last > 0 {
		fmt.Fprintf(r.e.stderr, "\r%s\r", strings.Repeat(" ", r.last))
		r.last = 0
	}
}

// progressText is the terminal's progress line, in IEC units. The percentage
// is of the image when its decoded size is known; otherwise (gzip, bzip2, a
// pipe) the line shows the decoded bytes and, labelled as such, how much of
// the source was read: never a percentage of one next to bytes of the other.
func progressText(p flash.Progress) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-9s", p.Phase)
	done := p.Done()
	if p.Phase == flash.PhaseVerifying {
		done = p.Verified
	}
	switch {
	case p.ImageSize > 0:
		fmt.Fprintf(&b, " %3.0f%%  %s / %s", min(1, float64(done)/float64(p.ImageSize))*100, units.Bytes(done), units.Bytes(p.ImageSize))
	case p.Phase == flash.PhaseOpening:
	default:
		fmt.Fprintf(&b, "  %s", units.Bytes(done))
	}
	if p.Rate > 0 {
		fmt.Fprintf(&b, "  %s/s", units.Bytes(int64(p.Rate)))
	}
	if p.ImageSize <= 0 && p.SourceTotal > 0 && p.Phase == flash.PhaseWriting {
		fmt.Fprintf(&b, "  (source %.0f%% read)", min(1, float64(p.SourceBytes)/float64(p.SourceTotal))*100)
	}
	if p.ETA > 0 {
		fmt.Fprintf(&b, "  ETA %s", p.ETA)
	}
	return b.String()
}

// line is the JSON result of a run, ok or not.
func (run *flashRun) line(err error, code int) resultLine {
	l := resultLine{Type: "result", OK: err == nil, Image: run.image, ExitCode: code}
	if run.targetKnown {
		l.Target = run.target
	}
	if run.want != "" {
		want, from := run.want, string(run.wantFrom)
		l.SHA256Expected, l.SHA256Source = &want, &from
	}
	if err != nil {
		l.Error = err.Error()
		l.TargetState = string(flash.TargetUntouched)
	}
	res := run.res
	if res == nil {
		return l
	}
	secs := res.Duration.Seconds()
	l.Format, l.SHA256, l.SHA256Skipped, l.SourceBytes, l.ImageSize = string(res.Format), res.SHA256, res.SHA256Skipped, res.SourceBytes, res.ImageSize
	l.Written, l.Zeroed, l.Seconds = res.Written, res.Zeroed, round3(secs)
	l.TargetRead, l.Skipped, l.Fetched, l.FetchedBlocks = res.TargetRead, res.Skipped, res.Fetched, res.FetchedBlocks
	if done := res.ImageSize; secs > 0 {
		if err != nil {
			done = res.Written + res.Zeroed + res.Skipped
		}
		l.MBps = round3(float64(done) / secs / 1e6)
	}
	l.Verified, l.GPTRelocated, l.TargetState, l.Warnings = res.Verified, res.GPTRelocated, string(res.Target), res.Warnings
	return l
}

func (r *report) result(run *flashRun) {
	if r.json {
		r.emit(run.line(nil, exitOK))
		return
	}
	res := run.res
	r.endLine()
	for _, w := range res.Warnings {
		fmt.Fprintf(r.e.stderr, "bty: warning: %s\n", w)
	}
	verified := ""
	if res.Verified {
		verified = ", read back and verified"
	}
	rate := "-"
	if secs := res.Duration.Seconds(); secs > 0 {
		rate = units.Bytes(int64(float64(res.ImageSize)/secs)) + "/s"
	}
	checked := "not checked: no expected digest is known (give --sha256, or put IMAGE.sha256 beside the image)"
	switch {
	case run.want != "":
		checked = run.wantFrom.Matches()
	case res.SHA256Skipped:
		checked = "a raw image is hashed only to check an expected digest (give --sha256, or put IMAGE.sha256 beside the image)"
	}
	delta := ""
	if res.TargetRead > 0 {
		delta = fmt.Sprintf(", %s already in place (%s read from the target)", units.Bytes(res.Skipped), units.Bytes(res.TargetRead))
	}
	if res.FetchedBlocks > 0 {
		delta += fmt.Sprintf(", %d blocks fetched (%s)", res.FetchedBlocks, units.Bytes(res.Fetched))
	}
	fmt.Fprintf(r.e.stdout, "bty: wrote %s (%s, %s) to %s in %s (%s): %s written, %s zeroed%s%s\nsha256 %s: %s\n",
		run.image, res.Format, units.Bytes(res.ImageSize), run.target, res.Duration.Round(time.Millisecond), rate,
		units.Bytes(res.Written), units.Bytes(res.Zeroed), delta, verified, res.Digest(), checked)
}

// fail reports a failed run: as the JSON result, or on a terminal by ending
// the progress line (main prints the error).
func (r *report) fail(run *flashRun, err error, code int) {
	if r.json {
		r.emit(run.line(err, code))
		return
	}
	r.endLine()
}

func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }
