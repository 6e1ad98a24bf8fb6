package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"bty/flash"
	"bty/ui"
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

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// progressLine is the JSON form of flash.Progress.
type progressLine struct {
	Type        string  `json:"type"` // "progress"
	Phase       string  `json:"phase"`
	SourceBytes int64   `json:"source_bytes"`
	SourceTotal int64   `json:"source_total"`
	Written     int64   `json:"written"`
	Zeroed      int64   `json:"zeroed"`
	Verified    int64   `json:"verified"`
	ImageSize   int64   `json:"image_size"`
	Rate        float64 `json:"bytes_per_second"`
	ETA         float64 `json:"eta_seconds"`
}

// resultLine is the last JSON line of a run.
type resultLine struct {
	Type         string   `json:"type"` // "result"
	OK           bool     `json:"ok"`
	Image        string   `json:"image,omitempty"`
	Target       string   `json:"target,omitempty"`
	Format       string   `json:"format,omitempty"`
	SHA256       string   `json:"sha256,omitempty"`
	SourceBytes  int64    `json:"source_bytes,omitempty"`
	ImageSize    int64    `json:"image_size,omitempty"`
	Written      int64    `json:"bytes_written"`
	Zeroed       int64    `json:"bytes_zeroed"`
	Seconds      float64  `json:"seconds"`
	MBps         float64  `json:"mb_per_s"`
	Verified     bool     `json:"verified"`
	GPTRelocated bool     `json:"gpt_relocated,omitempty"`
	Warnings     []string `json:"warnings,omitempty"`
	Error        string   `json:"error,omitempty"`
	ExitCode     int      `json:"exit_code"`
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
			Written: p.Written, Zeroed: p.Zeroed, Verified: p.Verified, ImageSize: p.ImageSize, Rate: p.Rate, ETA: p.ETA.Seconds()})
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

func progressText(p flash.Progress) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-9s", p.Phase)
	done := p.Done()
	if p.Phase == flash.PhaseVerifying {
		done = p.Verified
	}
	if f := p.Fraction(); f >= 0 {
		fmt.Fprintf(&b, " %3.0f%%", f*100)
	}
	fmt.Fprintf(&b, "  %s", ui.Bytes(done))
	if p.ImageSize > 0 {
		fmt.Fprintf(&b, " / %s", ui.Bytes(p.ImageSize))
	}
	if p.Rate > 0 {
		fmt.Fprintf(&b, "  %s/s", ui.Bytes(int64(p.Rate)))
	}
	if p.ETA > 0 {
		fmt.Fprintf(&b, "  ETA %s", p.ETA)
	}
	return b.String()
}

func (r *report) result(image, target string, res *flash.Result) {
	secs := res.Duration.Seconds()
	mbps := 0.0
	if secs > 0 {
		mbps = float64(res.ImageSize) / secs / 1e6
	}
	if r.json {
		r.emit(resultLine{Type: "result", OK: true, Image: image, Target: target, Format: string(res.Format), SHA256: res.SHA256,
			SourceBytes: res.SourceBytes, ImageSize: res.ImageSize, Written: res.Written, Zeroed: res.Zeroed,
			Seconds: round3(secs), MBps: round3(mbps), Verified: res.Verified, GPTRelocated: res.GPTRelocated, Warnings: res.Warnings})
		return
	}
	r.endLine()
	for _, w := range res.Warnings {
		fmt.Fprintf(r.e.stderr, "bty: warning: %s\n", w)
	}
	verified := ""
	if res.Verified {
		verified = ", read back and verified"
	}
	fmt.Fprintf(r.e.stdout, "bty: wrote %s (%s, %s) to %s in %s (%.0f MB/s): %s written, %s zeroed%s\nsha256 %s\n",
		image, res.Format, ui.Bytes(res.ImageSize), target, res.Duration.Round(time.Millisecond), mbps,
		ui.Bytes(res.Written), ui.Bytes(res.Zeroed), verified, res.SHA256)
}

func (r *report) fail(err error, code int) {
	if r.json {
		r.emit(resultLine{Type: "result", OK: false, Error: err.Error(), ExitCode: code})
		return
	}
	r.endLine()
}

func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }
