package flash

import (
	"sync"
	"time"
)

// Phase is what the flash is doing.
type Phase string

const (
	PhaseOpening   Phase = "opening"
	PhaseWriting   Phase = "writing"
	PhaseFinishing Phase = "finishing" // digest check, first MiB, sync
	PhaseVerifying Phase = "verifying"
	PhaseDone      Phase = "done"
)

// Progress is a snapshot of a flash, delivered through Options.Progress.
type Progress struct {
	Phase       Phase
	SourceBytes int64         // bytes read from the source so far
	SourceTotal int64         // size of the source, -1 when unknown
	Written     int64         // image bytes written to the target
	Zeroed      int64         // image bytes zeroed without writing data
	TargetRead  int64         // bytes read from the target to compare (delta)
	Skipped     int64         // image bytes the target held already (delta)
	Verified    int64         // bytes read back and compared (PhaseVerifying)
	ImageSize   int64         // decoded image size, -1 when unknown
	Rate        float64       // image bytes (written + zeroed) per second since the start
	ETA         time.Duration // 0 when unknown
}

// Done is how much of the image is on the target.
func (p Progress) Done() int64 { return p.Written + p.Zeroed + p.Skipped }

// Fraction is the part of the work done, between 0 and 1, or -1 when unknown.
func (p Progress) Fraction() float64 {
	switch {
	case p.Phase == PhaseVerifying && p.ImageSize > 0:
		return min(1, float64(p.Verified)/float64(p.ImageSize))
	case p.ImageSize > 0:
		return min(1, float64(p.Done())/float64(p.ImageSize))
	case p.SourceTotal > 0:
		return min(1, float64(p.SourceBytes)/float64(p.SourceTotal))
	}
	return -1
}

// reporter samples the pipeline's counters and calls the callback at most every
// interval, plus once at the start and at each phase change.
type reporter struct {
	fn       func(Progress)
	interval time.Duration
	start    time.Time
	sample   func() Progress
	mu       sync.Mutex
	phase    Phase
	stop     chan struct{}
	done     chan struct{}
}

func newReporter(fn func(Progress), interval time.Duration, sample func() Progress) *reporter {
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	r := &reporter{fn: fn, interval: interval, start: time.Now(), sample: sample, phase: PhaseOpening, stop: make(chan struct{}), done: make(chan struct{})}
	if fn == nil {
		close(r.done)
		return r
	}
	r.emit() // the opening phase, however quickly it passes
	go r.loop()
	return r
}

func (r *reporter) loop() {
	defer close(r.done)
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.emit()
		}
	}
}

func (r *reporter) setPhase(p Phase) {
	r.mu.Lock()
	r.phase = p
	r.mu.Unlock()
	if r.fn != nil {
		r.emit()
	}
}

func (r *reporter) emit() {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.sample()
	p.Phase = r.phase
	if el := time.Since(r.start).Seconds(); el > 0 {
		p.Rate = float64(p.Done()) / el
	}
	if p.Rate > 0 && p.ImageSize > 0 && p.Phase == PhaseWriting {
		p.ETA = time.Duration(float64(p.ImageSize-p.Done()) / p.Rate * float64(time.Second)).Round(time.Second)
	}
	r.fn(p)
}

func (r *reporter) close() {
	if r.fn != nil {
		close(r.stop)
	}
	<-r.done
}
