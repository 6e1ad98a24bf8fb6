package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"bty/catalog"
	"bty/disks"
	"bty/flash"
	"bty/wire"
)

// Action is what the caller does after Run.
type Action int

const (
	// Reboot: the flash succeeded or the inventory was posted; sync and reboot.
	Reboot Action = iota
	// Exit: the server said to boot the local disk; exit 0.
	Exit
	// Wizard: open the wizard with Outcome.Catalog and the pre-filled choices;
	// without a terminal, exit with Outcome.Err's code.
	Wizard
)

// Outcome is how a server-driven run ended.
type Outcome struct {
	Action  Action
	Catalog string // Wizard: the catalog to open
	Image   string // Wizard: pre-filled image, when a flash plan failed
	Disk    string // Wizard: pre-filled disk (serial:S)
	Why     string // Wizard: why it fell back, to show
	Err     error  // Wizard after a failed flash: the failure
}

// Runner follows one machine's plan.
type Runner struct {
	Client *Client
	// Resolver opens the plan's image; nil means a catalog.Resolver of its
	// own. main passes its resolver, so that --plain-http reaches the flash.
	Resolver *catalog.Resolver
	Roots    disks.Roots
	// Log gets the milestones (bty: flash starting, bty: write 50%, ...).
	Log io.Writer
	// LSHW returns lshw's JSON tree, or nil; nil means run `lshw -json` when it
	// is installed.
	LSHW func(ctx context.Context) json.RawMessage
	// Flash is the engine's options for the flash (progress is added).
	Flash flash.Options
	// Classify names a failure's category for the server; nil sends none.
	Classify func(error) wire.Class

	progress sync.WaitGroup // progress posts in flight
}

func (r *Runner) say(format string, args ...any) {
	if r.Log != nil {
		fmt.Fprintf(r.Log, "bty: "+format+"\n", args...)
	}
}

// Run posts the inventory (in the background), fetches the plan and follows it.
// Before it returns it gives the inventory post up to five seconds to land.
// The inventory is collected while the plan is fetched and posted after it,
// so that it carries the plan's agent token.
func (r *Runner) Run(ctx context.Context) Outcome {
	planned := make(chan struct{})
	inv := r.postInventory(ctx, planned)
	plan, err := r.Client.Plan(ctx)
	close(planned)
	out := r.follow(ctx, plan, err, inv)
	waitFor(inv, 5*time.Second)
	return out
}

func (r *Runner) follow(ctx context.Context, plan wire.Plan, err error, inv func() error) Outcome {
	fallback := Outcome{Action: Wizard, Catalog: r.Client.Server + "/catalog.toml"}
	if err != nil {
		fallback.Why = fmt.Sprintf("no plan from %s: %v", r.Client.Server, err)
		r.say("%s; opening the wizard with %s", fallback.Why, fallback.Catalog)
		return fallback
	}
	switch plan.Mode {
	case wire.ModeExit:
		r.say("the server says boot the local disk; exiting")
		return Outcome{Action: Exit}
	case wire.ModeInventory:
		if err := inv(); err != nil {
			r.say("inventory not posted: %v", err)
		} else {
			r.say("inventory posted")
		}
		return Outcome{Action: Reboot}
	case wire.ModeInteractive:
		return Outcome{Action: Wizard, Catalog: plan.Catalog, Why: "the server asks for the wizard"}
	}
	return r.flash(ctx, plan)
}

// flash follows a flash plan: the disk by exact serial, the digest verified,
// the status posted before anything waits for a human.
func (r *Runner) flash(ctx context.Context, plan wire.Plan) Outcome {
	disk := "serial:" + plan.TargetDiskSerial
	var target string     // the disk, once found
	var res *flash.Result // once Flash returned
	fail := func(err error) Outcome {
		var ce *flash.CancelError
		if errors.Is(err, context.Canceled) && !errors.As(err, &ce) {
			err = &flash.CancelError{Cause: context.Cause(ctx)}
		}
		if target != "" {
			err = fmt.Errorf("%w; %s", err, res.TargetNote(target))
		}
		r.progress.Wait() // the server orders the posts as they arrive
		reason := err.Error()
		r.say("flash failed: %s", reason)
		var class wire.Class
		if r.Classify != nil {
			class = r.Classify(err)
		}
		if perr := r.Client.PostStatus(context.WithoutCancel(ctx), wire.Failed(reason, class)); perr != nil {
			r.say("%v", perr)
		}
		return Outcome{Action: Wizard, Catalog: r.Client.Server + "/catalog.toml", Image: plan.Image, Disk: disk, Why: "flash failed: " + reason, Err: err}
	}
	d, _, err := disks.ResolveTarget(r.Roots, disk, disks.Check{})
	if err != nil {
		return fail(err)
	}
	resolver := r.Resolver
	if resolver == nil {
		resolver = &catalog.Resolver{}
	}
	img, err := resolver.Resolve(ctx, plan.Image)
	if err != nil {
		return fail(err)
	}
	opt := r.Flash
	from := catalog.DigestPlan
	opt.SHA256 = plan.DiskImageSHA
	if opt.SHA256 == "" {
		opt.SHA256, from = img.SHA256, img.SHA256From
	}
	opt.FormatHint = plan.Format
	opt.Progress = r.milestones(ctx)
	if opt.Delta = plan.Delta; plan.Delta {
		if plan.BlockIndex != "" {
			img.BlockIndex, img.BlockIndexDigest = plan.BlockIndex, plan.BlockIndexDigest
		}
		if img.BlockIndex != "" {
			// Only the blocks the disk lacks are fetched; without an
			// index the delta reads the whole image.
			blocks, err := resolver.OpenBlocks(ctx, img)
			if err != nil {
				return fail(err)
			}
			opt.Store = blocks
			opt.SHA256, from = strings.TrimPrefix(blocks.Index().Digest, "sha256:"), catalog.DigestBlockIndex
		}
	}
	r.say("flash starting: %s to %s (serial %s)", plan.Image, d.Path, plan.TargetDiskSerial)
	target = d.Path
	res, err = flash.Flash(ctx, img.Source, d.Path, opt)
	if err != nil {
		return fail(err)
	}
	checked := "not checked: the plan gives no disk_image_sha"
	if opt.SHA256 != "" {
		checked = from.Matches()
	}
	r.say("flash complete: %s in %s, sha256 %s (%s)", d.Path, res.Duration.Round(time.Millisecond), res.Digest(), checked)
	if opt.Delta {
		r.say("delta: %d bytes written, %d zeroed, %d already in place, %d read from the disk, %d blocks fetched (%d bytes)",
			res.Written, res.Zeroed, res.Skipped, res.TargetRead, res.FetchedBlocks, res.Fetched)
	}
	r.progress.Wait()
	done := wire.Status{Status: wire.StatusDone, SHA256: res.SHA256, BytesWritten: res.Written + res.Zeroed}
	if opt.Delta {
		fetched := res.Fetched
		if opt.Store == nil {
			fetched = res.SourceBytes // no block index: the whole image was read
		}
		done.BytesFetched = &fetched
	}
	if err := r.Client.PostStatus(context.WithoutCancel(ctx), done); err != nil {
		r.say("%v", err)
	}
	return Outcome{Action: Reboot}
}

// progressEvery: while it writes, the flash tells the server where it is at
// most this often (the web UI shows the rate and what is left from it).
const progressEvery = time.Second

// milestones reports the start of the write and each quarter of it once on
// the log, and to the server those and where the write is at most once a
// second. Progress is sampled, so a flash quicker than the sampling interval
// reports its quarters when the writing phase ends. The posts run in the
// background: the flash never waits for them.
func (r *Runner) milestones(ctx context.Context) func(flash.Progress) {
	next := 0
	var last time.Time
	return func(p flash.Progress) {
		if p.Phase == flash.PhaseOpening {
			return
		}
		f := p.Fraction()
		if p.Phase != flash.PhaseWriting {
			f = 1
		}
		post := next == 0 // the write started
		next = max(next, 25)
		for f >= 0 && next < 100 && f*100 >= float64(next) {
			r.say("write %d%%", next)
			next += 25
			post = true
		}
		if p.Phase == flash.PhaseWriting && time.Since(last) >= progressEvery {
			post = true
		}
		if post {
			last = time.Now()
			total := max(p.ImageSize, 0)
			r.progress.Add(1)
			go func() {
				defer r.progress.Done()
				r.Client.PostProgress(context.WithoutCancel(ctx), wire.Progress{Phase: string(p.Phase), BytesWritten: p.Done(), BytesTotal: total})
			}()
		}
	}
}

// postInventory collects the inventory, waits until planned is closed, posts
// it, and returns a func that waits for all that.
func (r *Runner) postInventory(ctx context.Context, planned <-chan struct{}) func() error {
	var wg sync.WaitGroup
	var err error
	wg.Add(1)
	go func() {
		defer wg.Done()
		ds, lerr := disks.List(r.Roots)
		if lerr != nil {
			err = lerr
			return
		}
		inv := wire.Inventory{Disks: disks.Inventory(ds)}
		if r.LSHW != nil {
			inv.LSHW = r.LSHW(ctx)
		} else {
			inv.LSHW = lshw(ctx)
		}
		<-planned
		err = r.Client.PostInventory(ctx, inv)
	}()
	return func() error { wg.Wait(); return err }
}

func waitFor(f func() error, d time.Duration) {
	done := make(chan struct{})
	go func() { f(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// lshw runs `lshw -json -quiet` when it is installed; its tree is optional.
func lshw(ctx context.Context) json.RawMessage {
	path, err := exec.LookPath("lshw")
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "-json", "-quiet").Output()
	if err != nil || !json.Valid(out) {
		return nil
	}
	return out
}

// ConsoleWriter returns stderr, plus /dev/console (at path) when stderr is not
// already that console, so an observer on the serial console follows too.
func ConsoleWriter(stderr *os.File, path string) io.Writer {
	if path == "" {
		return stderr
	}
	c, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return stderr
	}
	if same(stderr, c) {
		c.Close()
		return stderr
	}
	return io.MultiWriter(stderr, c)
}

func same(a, b *os.File) bool {
	fa, err1 := a.Stat()
	fb, err2 := b.Stat()
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}
