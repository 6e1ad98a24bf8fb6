package ui

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"bty/catalog"
	"bty/disks"
	"bty/flash"
	"bty/format"
)

// Options configure a wizard. The zero value of each field says what it means.
type Options struct {
	// Title follows "bty" on the top line, e.g. "demo"; "" shows "bty" alone.
	Title string
	// ImageRoot is the directory of local images; "" means none.
	ImageRoot string
	// Catalogs were named on the command line (--catalog): the source screen
	// is skipped. Empty means the user chooses on the source screen, which is
	// skipped too when the image root has images (esc on the image screen
	// reaches it).
	Catalogs []string
	// DefaultCatalog is offered on the source screen; "" offers none.
	DefaultCatalog string
	// Image is --image: the wizard resolves it first and skips the image
	// screen. Disk is --disk: the disk screen starts on it, and with both the
	// wizard opens at the confirmation.
	Image, Disk string
	// SHA256 is --sha256, the expected digest of Image; "" means the image's own.
	SHA256 string
	// Verify reads the target back after writing.
	Verify bool
	// Targets lists what may be flashed. Required.
	Targets TargetsFunc
	// CanReboot offers reboot on the done screen, after a y/N question whose
	// default is no; false offers none. Only the live environment sets it
	// (a workstation is rebooted by its own means). The wizard does not
	// reboot: Run's Outcome says the user asked, and the caller does it.
	CanReboot bool
	// Plain selects PlainStyles (see PlainTerminal); false means DefaultStyles.
	Plain bool
	// Backend does the work; its nil fields mean the real packages.
	Backend Backend
}

// Backend is what the wizard does outside itself. Each nil field means the
// real package; tests and the demo replace some.
type Backend struct {
	// ScanRoot lists the image root; nil means catalog.ScanRoot. A missing
	// directory holds no images.
	ScanRoot func(dir string) ([]catalog.Entry, error)
	// LoadCatalog reads one catalog; nil means catalog.Resolver.Load.
	LoadCatalog func(ctx context.Context, src string) ([]catalog.Entry, error)
	// Open turns a row into something to flash; nil means catalog.Resolver.Open.
	Open func(ctx context.Context, e catalog.Entry) (catalog.Resolved, error)
	// Resolve turns --image into something to flash, looking names up in the
	// image root and catalogs; nil means catalog.Resolver.Resolve.
	Resolve func(ctx context.Context, spec, root string, catalogs []string) (catalog.Resolved, error)
	// Flash writes; nil means flash.Flash.
	Flash func(ctx context.Context, src flash.Source, target string, opt flash.Options) (*flash.Result, error)
	// Inspect reads an opened image's format and decoded size, for the
	// confirmation and the disks' verdicts; nil means flash.Inspect.
	Inspect func(ctx context.Context, src flash.Source, opt flash.Options) (flash.Info, error)
}

func (b Backend) withDefaults() Backend {
	if b.ScanRoot == nil {
		b.ScanRoot = catalog.ScanRoot
	}
	if b.LoadCatalog == nil {
		b.LoadCatalog = func(ctx context.Context, src string) ([]catalog.Entry, error) {
			c, err := (&catalog.Resolver{}).Load(ctx, src)
			if err != nil {
				return nil, err
			}
			return c.Images, nil
		}
	}
	if b.Open == nil {
		b.Open = (&catalog.Resolver{}).Open
	}
	if b.Resolve == nil {
		b.Resolve = func(ctx context.Context, spec, root string, catalogs []string) (catalog.Resolved, error) {
			return (&catalog.Resolver{ImageRoot: root, Catalogs: catalogs}).Resolve(ctx, spec)
		}
	}
	if b.Flash == nil {
		b.Flash = flash.Flash
	}
	if b.Inspect == nil {
		b.Inspect = flash.Inspect
	}
	return b
}

// Outcome is how a wizard ended.
type Outcome struct {
	// Flashed are the targets whose last flash succeeded, in the order of
	// those flashes.
	Flashed []string
	// Unfinished are the targets whose last flash failed or was cancelled
	// after it began to write, with what each holds now.
	Unfinished []Unfinished
	// Reboot: the user asked to reboot from the done screen.
	Reboot bool
	// Err is why the wizard ended badly: the error on screen when the user
	// quit from the error screen, a cancellation (wrapping context.Canceled)
	// when a flash was cancelled on the way out or a signal cancelled the
	// context. Its message is in plain words. Nil when the user quit
	// otherwise.
	Err error
}

// Unfinished is a target a flash did not finish.
type Unfinished struct {
	Target string
	// Left says what the target holds now, naming it: "/dev/sdb was left
	// without a partition table: it will not boot until it is flashed again."
	Left string
}

// Run shows the wizard on the terminal until the user quits. Cancelling ctx
// (SIGINT, SIGTERM) cancels a running flash, waits for it to stop, and ends.
func Run(ctx context.Context, opt Options) (Outcome, error) {
	// Signals are main's: they cancel ctx, which the wizard turns into a
	// cancelled flash before it ends.
	p := tea.NewProgram(New(ctx, opt), tea.WithoutSignalHandler())
	stop := context.AfterFunc(ctx, func() { p.Send(interruptMsg{}) })
	defer stop()
	final, err := p.Run()
	if err != nil {
		return Outcome{}, fmt.Errorf("terminal: %w", err)
	}
	m, ok := final.(Model)
	if !ok {
		return Outcome{}, errors.New("terminal: the wizard ended without a result")
	}
	return m.outcome, nil
}

// cancelled is a cancellation in plain words; it wraps context.Canceled, so
// that it still means exit code 130.
type cancelled struct{ why string }

func (c cancelled) Error() string { return c.why }
func (cancelled) Unwrap() error   { return context.Canceled }

var (
	errCancelled   = cancelled{"cancelled at your request"}
	errInterrupted = cancelled{"cancelled by a signal (SIGINT or SIGTERM)"}
)

// plainError is err with its message in plain words: the context package's
// "context canceled" and "context deadline exceeded" never reach a user.
type plainError struct{ err error }

func (e plainError) Error() string { return plainText(e.err) }
func (e plainError) Unwrap() error { return e.err }

func plainText(err error) string {
	if err == nil {
		return ""
	}
	var c cancelled
	if errors.As(err, &c) {
		return c.why
	}
	s := err.Error()
	s = strings.ReplaceAll(s, context.Canceled.Error(), "cancelled")
	return strings.ReplaceAll(s, context.DeadlineExceeded.Error(), "timed out")
}

// BackMsg: the user asked for the previous screen (esc).
type BackMsg struct{}

// Results of the work the root model starts.
type (
	// listLoadedMsg is one list of images: i is 0 for the image root, 1 +
	// the catalog's index for a catalog.
	listLoadedMsg struct {
		gen  int
		i    int
		rows []catalog.Entry
		err  string // the banner line when it failed
	}
	resolvedMsg struct {
		gen     int
		prefill bool          // --image, not a row
		entry   catalog.Entry // the row; for --image, what is known of the file
		image   catalog.Resolved
		info    flash.Info // what the image will write
		err     error
	}
	targetsLoadedMsg struct {
		gen     int
		targets []Target
		err     error
	}
	progressMsg  struct{ p flash.Progress }
	flashDoneMsg struct {
		res   *flash.Result
		err   error
		phase flash.Phase // the last phase the flash reported
	}
	// interruptMsg: the context was cancelled (a signal).
	interruptMsg struct{}
)

type screen int

const (
	screenSource screen = iota
	screenImages
	screenDisks
	screenConfirm
	screenProgress
	screenDone
	screenError
)

// retry is what the error screen's retry does.
type retry int

const (
	retryOpen    retry = iota // open the chosen row again
	retryPrefill              // resolve --image again
	retryFlash                // flash the same plan again
)

// plan is what will be flashed where.
type plan struct {
	entry      catalog.Entry // the chosen row; zero for --image
	image      catalog.Resolved
	info       flash.Info           // format and decoded size, as far as known
	sha256     string               // expected digest, "" when unknown
	sha256From catalog.DigestSource // where sha256 comes from
	target     Target
	verify     bool
}

func (p plan) format() string {
	switch {
	case p.info.Format != "": // read from the bytes
		return string(p.info.Format)
	case p.image.Format != "":
		return formatName(p.image.Format)
	case p.entry.Format != "":
		return formatName(p.entry.Format)
	}
	return "from the first bytes, when the flash starts"
}

func (p plan) size() int64 {
	if p.image.Size > 0 {
		return p.image.Size
	}
	return p.entry.Size
}

// sizeText is what the flash reads and what it writes: "312 MiB to read,
// 2.0 GiB to write".
func (p plan) sizeText() string {
	read := p.size()
	if read <= 0 {
		read = p.info.SourceSize
	}
	in := "unknown size to read"
	if read > 0 {
		in = Bytes(read) + " to read"
	}
	switch {
	case p.info.ImageSize <= 0:
		return in + ", size to write known once decoded"
	case p.info.Format == format.Raw && p.info.ImageSize == read:
		return Bytes(read)
	case p.info.Exact:
		return in + ", " + Bytes(p.info.ImageSize) + " to write"
	}
	return in + ", at least " + Bytes(p.info.ImageSize) + " to write"
}

func (p plan) from() string {
	if p.entry.From != "" {
		return p.entry.From
	}
	if p.image.Source != nil && strings.Contains(p.image.Source.Name(), "://") {
		return p.image.Source.Name()
	}
	return ""
}

// network reports whether the bytes come over the network (a download bar).
func (p plan) network() bool {
	return p.image.Source != nil && strings.Contains(p.image.Source.Name(), "://")
}

// check is what the disks' verdicts need to know about the image.
func (p plan) check(root string) disks.Check {
	var c disks.Check
	f := p.image.Format
	if f == "" {
		f = p.entry.Format
	}
	if format.Parse(f) == format.Raw {
		c.ImageSize = p.size()
	}
	if p.info.ImageSize > 0 {
		// Exact or a lower bound: either way a smaller disk cannot hold it.
		c.ImageSize = p.info.ImageSize
	}
	c.ImagePath = p.image.Path
	if fi, err := os.Stat(root); root != "" && err == nil && fi.IsDir() {
		c.ImageRoot = root
	}
	return c
}

// imageLoad is one listing of the images: the image root's, then each
// catalog's, arriving one by one. A slow catalog does not hold back the
// others; stop gives up on the ones still loading.
type imageLoad struct {
	catalogs []string
	lists    [][]catalog.Entry // [0] the image root, then one per catalog
	errs     []string          // per list, its banner line, "" when none
	done     []bool
	ctx      context.Context // of the catalog loads
	stop     context.CancelFunc
}

func (l imageLoad) pending() []string {
	var out []string
	for i, src := range l.catalogs {
		if !l.done[i+1] {
			out = append(out, src)
		}
	}
	return out
}

func (l imageLoad) complete() bool { return !slices.Contains(l.done, false) }

// Model is the wizard: the screen enum, the error state, and one model per
// screen. It moves source -> images -> disks -> confirm -> progress -> done,
// with the error screen reachable from the steps that do work.
type Model struct {
	opt  Options
	be   Backend
	ctx  context.Context
	keys KeyMap
	st   Styles
	help help.Model

	width, height int
	screen        screen

	catalogs    []string // in use: --catalog, or chosen on the source screen
	sourceFixed bool     // --catalog given: no source screen
	sourceSeen  bool     // the source question was answered or skipped

	source   sourceScreen
	images   imagesScreen
	disks    disksScreen
	confirm  confirmScreen
	progress progressScreen
	done     doneScreen
	failure  errorScreen
	errStep  screen // the step that failed, for the top line
	errBack  screen // where esc goes from the error screen
	retry    retry

	plan        plan
	opening     catalog.Entry // the row being opened, for retry
	pendingDisk string        // --disk, until the first disk list
	imagesGen   int           // generation of the last image load; older results are dropped
	load        imageLoad     // the last image load
	resolveGen  int
	targetsGen  int
	showHelp    bool // the list of every key of the screen replaces the screen

	cancel    context.CancelFunc // of the running flash, nil when none
	flashCh   chan tea.Msg       // progress and the result of the running flash
	quitAfter bool               // quit once the running flash has stopped
	outcome   Outcome
}

// New returns the wizard's model, for Run or a test program.
func New(ctx context.Context, opt Options) Model {
	st := DefaultStyles()
	if opt.Plain {
		st = PlainStyles()
	}
	h := help.New()
	h.Styles = st.Help
	if opt.Plain {
		h.ShortSeparator, h.Ellipsis = " | ", "..."
	}
	m := Model{
		opt:         opt,
		be:          opt.Backend.withDefaults(),
		ctx:         ctx,
		keys:        DefaultKeyMap(opt.Plain),
		st:          st,
		help:        h,
		screen:      screenImages,
		catalogs:    opt.Catalogs,
		sourceFixed: len(opt.Catalogs) > 0,
		source:      newSourceScreen(opt.ImageRoot, opt.DefaultCatalog, st),
		images:      newImagesScreen(opt.ImageRoot, st),
		disks:       newDisksScreen(),
		pendingDisk: opt.Disk,
	}
	m.images.canBack = !m.sourceFixed
	// The work Init starts (Init cannot change the model).
	if opt.Image != "" {
		m.resolveGen = 1
		m.images.status = "Opening " + opt.Image + "..."
	} else {
		m.startLoad()
	}
	m.setSize(80, 24)
	m.syncKeys()
	return m
}

// Init starts the work New set up: resolving --image, or listing the images.
func (m Model) Init() tea.Cmd {
	if m.opt.Image != "" {
		return m.prefillCmd()
	}
	return m.imagesCmd()
}

// resolvePrefill resolves --image (again).
func (m *Model) resolvePrefill() tea.Cmd {
	m.resolveGen++
	m.images.status = "Opening " + m.opt.Image + "..."
	return m.prefillCmd()
}

func (m Model) prefillCmd() tea.Cmd {
	gen, spec, root, cats, resolve, ins, ctx := m.resolveGen, m.opt.Image, m.opt.ImageRoot, m.catalogs, m.be.Resolve, m.be.Inspect, m.ctx
	return func() tea.Msg {
		res, err := resolve(ctx, spec, root, cats)
		var e catalog.Entry
		if res.Path != "" && err == nil {
			// A path given directly: its size, for the plan and the
			// verdicts, is the file's.
			if fi, err := os.Stat(res.Path); err == nil {
				e.Size = fi.Size()
			}
		}
		return resolvedMsg{gen: gen, prefill: true, entry: e, image: res, info: inspect(ctx, ins, res, err), err: err}
	}
}

// inspect reads what an opened image will write. A source that cannot be
// read now leaves it unknown: the flash will say why.
func inspect(ctx context.Context, fn func(context.Context, flash.Source, flash.Options) (flash.Info, error), img catalog.Resolved, err error) flash.Info {
	unknown := flash.Info{SourceSize: -1, ImageSize: -1}
	if err != nil || img.Source == nil {
		return unknown
	}
	ctx, cancel := context.WithTimeout(ctx, inspectTimeout)
	defer cancel()
	info, err := fn(ctx, img.Source, flash.Options{FormatHint: img.Format})
	if err != nil {
		return unknown
	}
	return info
}

// inspectTimeout bounds the reads of an image's head and trailer before the
// disks are listed: a source that slow will show its trouble in the flash.
const inspectTimeout = 15 * time.Second

// loadImages lists the image root and the catalogs (again).
func (m *Model) loadImages() tea.Cmd {
	m.startLoad()
	m.images.loading = true
	return m.imagesCmd()
}

// startLoad begins a new image load, abandoning the last one.
func (m *Model) startLoad() {
	if m.load.stop != nil {
		m.load.stop()
	}
	m.imagesGen++
	n := 1 + len(m.catalogs)
	// The catalogs load under a context of their own, which stop cancels.
	ctx, stop := context.WithCancel(m.ctx)
	m.load = imageLoad{catalogs: m.catalogs, lists: make([][]catalog.Entry, n), errs: make([]string, n), done: make([]bool, n), ctx: ctx, stop: stop}
}

// imagesCmd lists the image root and loads each catalog, in parallel; each
// list arrives as a listLoadedMsg.
func (m Model) imagesCmd() tea.Cmd {
	gen, root, be, ctx := m.imagesGen, m.opt.ImageRoot, m.be, m.load.ctx
	cmds := []tea.Cmd{func() tea.Msg {
		if root == "" {
			return listLoadedMsg{gen: gen, i: 0}
		}
		rows, err := be.ScanRoot(root)
		msg := listLoadedMsg{gen: gen, i: 0, rows: rows}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			msg.err = plainText(err)
		}
		return msg
	}}
	for i, src := range m.load.catalogs {
		cmds = append(cmds, func() tea.Msg {
			rows, err := be.LoadCatalog(ctx, src)
			if err != nil {
				msg := oneLine(err)
				if !strings.Contains(msg, src) {
					msg = "catalog " + src + ": " + msg
				}
				return listLoadedMsg{gen: gen, i: i + 1, err: msg + " (its images are not listed)"}
			}
			return listLoadedMsg{gen: gen, i: i + 1, rows: rows}
		})
	}
	return tea.Batch(cmds...)
}

// listLoaded takes one list of images; the image screen shows the rows once
// the image root is listed, and names the catalogs still loading.
func (m Model) listLoaded(msg listLoadedMsg) Model {
	if msg.gen != m.imagesGen || msg.i >= len(m.load.done) || m.load.done[msg.i] {
		return m
	}
	l := m.load
	l.lists, l.errs, l.done = slices.Clone(l.lists), slices.Clone(l.errs), slices.Clone(l.done)
	l.lists[msg.i], l.errs[msg.i], l.done[msg.i] = msg.rows, msg.err, true
	m.load = l
	return m.showLoad()
}

// stopLoading gives up on the catalogs still loading.
func (m Model) stopLoading() Model {
	if m.load.stop != nil {
		m.load.stop()
	}
	l := m.load
	l.errs, l.done = slices.Clone(l.errs), slices.Clone(l.done)
	for i, src := range l.catalogs {
		if !l.done[i+1] {
			l.done[i+1] = true
			l.errs[i+1] = "catalog " + src + ": stopped waiting for it (its images are not listed; r loads it again)"
		}
	}
	m.load = l
	return m.showLoad()
}

func (m Model) showLoad() Model {
	l := m.load
	if !l.done[0] {
		return m
	}
	var banner []string
	for _, e := range l.errs {
		if e != "" {
			banner = append(banner, e)
		}
	}
	m.images.setRows(catalog.Merge(l.lists...), banner, l.pending())
	if !l.complete() {
		return m
	}
	l.stop()
	if !m.sourceFixed && !m.sourceSeen && m.opt.Image == "" {
		m.sourceSeen = true
		if len(m.images.rows) == 0 && len(banner) == 0 && m.screen == screenImages {
			m.source.canBack = false
			m.screen = screenSource
		}
	}
	return m
}

// oneLine is an error's message on one line (an invalid catalog lists its
// problems on several).
func oneLine(err error) string {
	s := plainText(err)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " ..."
	}
	return s
}

func (m *Model) openImage(e catalog.Entry) tea.Cmd {
	m.resolveGen++
	m.opening = e
	gen, open, ins, ctx := m.resolveGen, m.be.Open, m.be.Inspect, m.ctx
	m.images.status = "Opening " + e.Name + "..."
	return func() tea.Msg {
		res, err := open(ctx, e)
		return resolvedMsg{gen: gen, entry: e, image: res, info: inspect(ctx, ins, res, err), err: err}
	}
}

func (m *Model) loadTargets() tea.Cmd {
	m.targetsGen++
	m.disks.loading = true
	gen, list, c := m.targetsGen, m.opt.Targets, m.plan.check(m.opt.ImageRoot)
	return func() tea.Msg {
		if list == nil {
			return targetsLoadedMsg{gen: gen, err: errors.New("no targets to list")}
		}
		ts, err := list(c)
		return targetsLoadedMsg{gen: gen, targets: ts, err: err}
	}
}

// startFlash runs the flash in a goroutine started by the returned command;
// progress and the result come through flashCh, drained by waitFlash.
func (m *Model) startFlash() tea.Cmd {
	ctx, cancel := context.WithCancel(m.ctx)
	ch := make(chan tea.Msg, 8)
	m.cancel, m.flashCh, m.quitAfter = cancel, ch, false
	m.progress = newProgressScreen(m.plan)
	m.progress.SetSize(m.bodySize())
	m.screen = screenProgress
	pl, fl := m.plan, m.be.Flash
	// phase is the last phase reported, kept even when the screen drops the
	// report: what a failure leaves on the target depends on it.
	var mu sync.Mutex
	phase := flash.PhaseOpening
	opt := flash.Options{
		SHA256:     pl.sha256,
		Size:       pl.image.Size,
		FormatHint: pl.image.Format,
		Verify:     pl.verify,
		Progress: func(p flash.Progress) {
			mu.Lock()
			phase = p.Phase
			mu.Unlock()
			select {
			case ch <- progressMsg{p}:
			default: // the screen is behind: this report is dropped, the next one is newer
			}
		},
	}
	return func() tea.Msg {
		go func() {
			res, err := fl(ctx, pl.image.Source, pl.target.Path, opt)
			mu.Lock()
			last := phase
			mu.Unlock()
			ch <- flashDoneMsg{res: res, err: err, phase: last}
		}()
		return <-ch
	}
}

func waitFlash(ch chan tea.Msg) tea.Cmd {
	return func() tea.Msg { return <-ch }
}

// Update moves between the screens.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	was := m.screen
	m, cmd := m.update(msg)
	if m.screen != was {
		m.showHelp = false
	}
	m.syncKeys()
	return m, cmd
}

func (m Model) update(msg tea.Msg) (Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.setSize(msg.Width, msg.Height)
		return m, nil
	case interruptMsg:
		m.outcome.Err = errInterrupted
		if m.cancel != nil {
			m.cancel()
			m.quitAfter = true
			m.progress.cancelling = true
			return m, nil
		}
		return m, tea.Quit
	case tea.KeyPressMsg:
		if m.showHelp {
			// Any key closes the list of keys; ctrl+c also does its work.
			m.showHelp = false
			if !key.Matches(msg, m.keys.Kill) {
				return m, nil
			}
			m.keys = m.screenKeys()
		}
		if key.Matches(msg, m.keys.Help) {
			m.showHelp = true
			return m, nil
		}
		if m.screen != screenProgress && key.Matches(msg, m.keys.Quit, m.keys.Kill) {
			if m.screen == screenError {
				m.outcome.Err = plainError{m.failure.err}
			}
			return m, tea.Quit
		}
		return m.updateScreen(msg)

	case listLoadedMsg:
		return m.listLoaded(msg), nil
	case RefreshImagesMsg:
		return m, m.loadImages()
	case StopLoadingMsg:
		return m.stopLoading(), nil
	case SourceChosenMsg:
		m.catalogs, m.sourceSeen = msg.Catalogs, true
		m.screen = screenImages
		return m, m.loadImages()
	case ImageChosenMsg:
		return m, m.openImage(msg.Entry)
	case resolvedMsg:
		if msg.gen != m.resolveGen {
			return m, nil
		}
		m.images.status = ""
		prefill := msg.prefill
		if msg.err != nil {
			m.retry = retryOpen
			if prefill {
				m.retry = retryPrefill
			}
			return m.fail("Could not open the image", msg.err, "", screenImages, screenImages), nil
		}
		m.plan = plan{entry: msg.entry, image: msg.image, info: msg.info, sha256: msg.image.SHA256, sha256From: msg.image.SHA256From, verify: m.opt.Verify}
		if prefill && m.opt.SHA256 != "" {
			m.plan.sha256, m.plan.sha256From = m.opt.SHA256, catalog.DigestFlag
		}
		m.disks.image = msg.image.Name
		m.screen = screenDisks
		return m, m.loadTargets()
	case RefreshTargetsMsg:
		return m, m.loadTargets()
	case targetsLoadedMsg:
		if msg.gen != m.targetsGen {
			return m, nil
		}
		problem := ""
		if msg.err != nil {
			problem = "could not list the disks: " + plainText(msg.err)
		}
		m.disks.setTargets(msg.targets, problem)
		if spec := m.pendingDisk; spec != "" {
			m.pendingDisk = ""
			return m.prefillTarget(spec)
		}
		return m, nil
	case TargetChosenMsg:
		return m.toConfirm(msg.Target)
	case ConfirmedMsg:
		return m, m.startFlash()
	case progressMsg:
		if m.flashCh == nil {
			return m, nil
		}
		m.progress.p = msg.p
		return m, waitFlash(m.flashCh)
	case flashDoneMsg:
		return m.flashDone(msg)
	case CancelFlashMsg:
		if m.cancel != nil {
			m.cancel()
		}
		m.quitAfter = msg.Quit
		return m, nil
	case RebootMsg:
		m.outcome.Reboot = true
		return m, tea.Quit
	case AnotherDiskMsg:
		m.screen = screenDisks
		return m, m.loadTargets()
	case RetryMsg:
		switch m.retry {
		case retryPrefill:
			m.screen = screenImages
			return m, m.resolvePrefill()
		case retryFlash:
			// A new confirmation: enter on the error screen never writes.
			return m.toConfirm(m.plan.target)
		default:
			m.screen = screenImages
			return m, m.openImage(m.opening)
		}
	case BackMsg:
		return m.back()
	}
	return m.updateScreen(msg)
}

// prefillTarget applies --disk to the first list of targets: a target that
// may be written opens the confirmation; otherwise the disk screen says why.
func (m Model) prefillTarget(spec string) (Model, tea.Cmd) {
	for _, t := range m.disks.targets {
		if !t.matches(spec) {
			continue
		}
		if t.Verdict.Level == disks.Refused {
			m.disks.focus(t.Path)
			m.disks.problem = fmt.Sprintf("--disk %s is refused: %s", spec, strings.Join(t.Verdict.Reasons, "; "))
			return m, nil
		}
		m.disks.focus(t.Path)
		return m.toConfirm(t)
	}
	if m.disks.problem == "" {
		m.disks.problem = fmt.Sprintf("--disk %s: no such disk; choose one below", spec)
	}
	return m, nil
}

func (m Model) toConfirm(t Target) (Model, tea.Cmd) {
	m.plan.target = t
	var cmd tea.Cmd
	m.confirm, cmd = newConfirmScreen(m.plan, m.st)
	m.confirm.SetSize(m.bodySize())
	m.screen = screenConfirm
	return m, cmd
}

func (m Model) flashDone(msg flashDoneMsg) (Model, tea.Cmd) {
	if m.cancel != nil {
		m.cancel()
	}
	m.cancel, m.flashCh = nil, nil
	target := m.plan.target.Path
	m.outcome.Flashed = slices.DeleteFunc(m.outcome.Flashed, func(t string) bool { return t == target })
	m.outcome.Unfinished = slices.DeleteFunc(m.outcome.Unfinished, func(u Unfinished) bool { return u.Target == target })
	if msg.err == nil && msg.res != nil {
		m.outcome.Flashed = append(m.outcome.Flashed, target)
		if m.quitAfter {
			return m, tea.Quit
		}
		m.done = doneScreen{plan: m.plan, res: *msg.res, canReboot: m.opt.CanReboot}
		m.done.SetSize(m.bodySize())
		m.screen = screenDone
		return m, nil
	}
	err := msg.err
	if err == nil {
		err = errors.New("the flash returned no result")
	}
	title := "The flash failed"
	if errors.Is(err, context.Canceled) {
		title, err = "The flash was cancelled", errCancelled
	}
	left, wrote := leftOn(target, msg.phase)
	if wrote {
		m.outcome.Unfinished = append(m.outcome.Unfinished, Unfinished{Target: target, Left: left})
	}
	if m.quitAfter {
		if m.outcome.Err == nil {
			m.outcome.Err = plainError{err}
		}
		return m, tea.Quit
	}
	m.retry = retryFlash
	return m.fail(title, err, left, screenProgress, screenDisks), nil
}

// leftOn says, naming the target, what a flash that failed in phase leaves
// on it (flash.Flash's order: nothing is written while opening; the first
// and last MiB are zeroed when writing starts; the first MiB is written
// last, while finishing), and whether anything was written.
func leftOn(target string, phase flash.Phase) (string, bool) {
	switch phase {
	case flash.PhaseOpening:
		return "Nothing was written to " + target + ": it holds what it held before.", false
	case flash.PhaseFinishing:
		return target + " was left without a partition table, or with one over an image that did not finish: flash it again before you use it.", true
	case flash.PhaseVerifying, flash.PhaseDone:
		return target + " holds the image, but reading it back failed: do not trust it; flash it again.", true
	}
	return target + " was left without a partition table: it will not boot until it is flashed again.", true
}

func (m Model) fail(title string, err error, after string, step, back screen) Model {
	m.failure = errorScreen{title: title, err: err, after: after}
	m.failure.SetSize(m.bodySize())
	m.errStep, m.errBack = step, back
	m.screen = screenError
	return m
}

// back is esc: one step back.
func (m Model) back() (Model, tea.Cmd) {
	switch m.screen {
	case screenSource:
		if m.source.canBack {
			m.screen = screenImages
		}
	case screenImages:
		if !m.sourceFixed {
			m.source.canBack = true
			m.screen = screenSource
		}
	case screenDisks, screenDone:
		m.screen = screenImages
		if len(m.images.rows) == 0 && !m.images.loading {
			return m, m.loadImages()
		}
		if m.images.loading && m.imagesGen == 0 {
			return m, m.loadImages()
		}
	case screenConfirm:
		m.screen = screenDisks
		return m, m.loadTargets()
	case screenError:
		m.screen = m.errBack
		switch m.errBack {
		case screenDisks:
			return m, m.loadTargets()
		case screenImages:
			if m.imagesGen == 0 || len(m.images.rows) == 0 {
				return m, m.loadImages()
			}
		}
	}
	return m, nil
}

// updateScreen hands a message to the current screen.
func (m Model) updateScreen(msg tea.Msg) (Model, tea.Cmd) {
	var cmd tea.Cmd
	switch m.screen {
	case screenSource:
		m.source, cmd = m.source.Update(msg, m.keys)
	case screenImages:
		m.images, cmd = m.images.Update(msg, m.keys)
	case screenDisks:
		m.disks, cmd = m.disks.Update(msg, m.keys)
	case screenConfirm:
		m.confirm, cmd = m.confirm.Update(msg, m.keys)
	case screenProgress:
		m.progress, cmd = m.progress.Update(msg, m.keys)
	case screenDone:
		m.done, cmd = m.done.Update(msg, m.keys)
	case screenError:
		m.failure, cmd = m.failure.Update(msg, m.keys)
	}
	return m, cmd
}

// syncKeys enables the bindings of the current screen in its current state;
// while the list of keys is shown, any key closes it.
func (m *Model) syncKeys() {
	m.keys = m.screenKeys()
	if m.showHelp {
		k := &m.keys
		k.only(&k.Help, &k.Kill)
		k.Help.SetKeys("?", "esc")
		k.Help.SetHelp("?/esc", "close this list")
	}
}

// screenKeys are the bindings of the current screen in its current state.
func (m Model) screenKeys() KeyMap {
	k := DefaultKeyMap(m.opt.Plain)
	switch m.screen {
	case screenSource:
		m.source.keys(&k)
	case screenImages:
		m.images.keys(&k)
	case screenDisks:
		m.disks.keys(&k)
	case screenConfirm:
		m.confirm.keys(&k)
	case screenProgress:
		m.progress.keys(&k)
	case screenDone:
		m.done.keys(&k)
	case screenError:
		m.failure.keys(&k)
	}
	// ? lists the keys wherever q is a key: where it is not, a text field
	// takes printable keys (or a question waits for y or n).
	k.Help.SetEnabled(k.Quit.Enabled())
	return k
}

// helpBindings are the current screen's bindings in the help line's order.
func (m Model) helpBindings() []key.Binding {
	if m.showHelp {
		return []key.Binding{m.keys.Help}
	}
	return m.helpBindingsOf(m.keys)
}

func (m Model) helpBindingsOf(k KeyMap) []key.Binding {
	switch m.screen {
	case screenSource:
		return m.source.help(k)
	case screenImages:
		return m.images.help(k)
	case screenDisks:
		return m.disks.help(k)
	case screenConfirm:
		return m.confirm.help(k)
	case screenProgress:
		return m.progress.help(k)
	case screenDone:
		return m.done.help(k)
	case screenError:
		return m.failure.help(k)
	}
	return nil
}

// chrome is the lines around a screen: the top line, the rule, and a blank
// line and the help line at the bottom.
const chrome = 4

func (m Model) bodySize() (int, int) { return m.width, max(1, m.height-chrome) }

func (m *Model) setSize(w, h int) {
	if w <= 0 || h <= 0 {
		return
	}
	m.width, m.height = w, h
	m.help.SetWidth(w)
	bw, bh := m.bodySize()
	m.source.SetSize(bw, bh)
	m.images.SetSize(bw, bh)
	m.disks.SetSize(bw, bh)
	m.confirm.SetSize(bw, bh)
	m.progress.SetSize(bw, bh)
	m.done.SetSize(bw, bh)
	m.failure.SetSize(bw, bh)
}

// View draws the top line, the current screen and the help line.
func (m Model) View() tea.View {
	v := tea.NewView(m.render())
	v.AltScreen = true
	v.WindowTitle = m.title()
	return v
}

func (m Model) title() string {
	if m.opt.Title != "" {
		return "bty " + m.opt.Title
	}
	return "bty"
}

func (m Model) render() string {
	st, w := m.st, m.width
	cur := m.screen
	if cur == screenError {
		cur = m.errStep
	}
	var steps []string
	for i, name := range []string{"source", "image", "disk", "confirm", "flash", "done"} {
		if screen(i) == cur {
			steps = append(steps, st.StepNow.Render(strings.ToUpper(name)))
		} else {
			steps = append(steps, st.Step.Render(name))
		}
	}
	top := st.Title.Render(m.title()) + "  " + strings.Join(steps, st.Step.Render(st.Sep))
	lines := []string{ansi.Truncate(top, w, ""), st.Rule.Render(strings.Repeat(st.RuleChar, w))}

	var body string
	switch m.screen {
	case screenSource:
		body = m.source.View(st)
	case screenImages:
		body = m.images.View(st)
	case screenDisks:
		body = m.disks.View(st)
	case screenConfirm:
		body = m.confirm.View(st)
	case screenProgress:
		body = m.progress.View(st)
	case screenDone:
		body = m.done.View(st)
	case screenError:
		body = m.failure.View(st)
	}
	if m.showHelp {
		body = m.keyList(st)
	}
	_, bh := m.bodySize()
	bl := strings.Split(body, "\n")
	if len(bl) > bh {
		bl = bl[:bh]
	}
	for len(bl) < bh {
		bl = append(bl, "")
	}
	for _, l := range bl {
		lines = append(lines, ansi.Truncate(l, w, ""))
	}
	// help.Model drops the bindings that do not fit only when its ellipsis
	// fits: cut what is left over.
	lines = append(lines, "", m.helpLine())
	return strings.Join(lines, "\n")
}

// helpLine is the help line: the keys that work now, in the screen's order.
// When they do not all fit, the last ones are left out, but never q, and
// "? all keys" is added: quitting and the list of every key stay in sight.
func (m Model) helpLine() string {
	h := m.help
	h.SetWidth(0) // this function leaves keys out, not help.Model
	var bs []key.Binding
	for _, b := range m.helpBindings() {
		if b.Enabled() {
			bs = append(bs, b)
		}
	}
	line := h.ShortHelpView(bs)
	if lipgloss.Width(line) > m.width && m.keys.Help.Enabled() {
		bs = append(bs, m.keys.Help)
		for lipgloss.Width(line) > m.width {
			i := len(bs) - 2 // before the ?
			for i >= 0 && bs[i].Help() == m.keys.Quit.Help() {
				i--
			}
			if i < 0 {
				break
			}
			bs = slices.Delete(bs, i, i+1)
			line = h.ShortHelpView(bs)
		}
	}
	return ansi.Truncate(line, m.width, m.st.Ellipsis)
}

// keyList is the body while the list of keys is shown: every key that works
// on the screen now, one a line.
func (m Model) keyList(st Styles) string {
	k := m.screenKeys()
	lines := []string{st.Heading.Render("Keys on this screen"), ""}
	var seen []string
	var rows [][2]string
	for _, b := range append(m.helpBindingsOf(k), k.Kill) {
		h := b.Help()
		if !b.Enabled() || slices.Contains(seen, h.Key+h.Desc) {
			continue
		}
		seen = append(seen, h.Key+h.Desc)
		rows = append(rows, [2]string{h.Key, h.Desc})
	}
	kw := 0
	for _, r := range rows {
		kw = max(kw, lipgloss.Width(r[0]))
	}
	for _, r := range rows {
		lines = append(lines, clip("  "+st.Heading.Render(fit(r[0], kw, ""))+"  "+r[1], m.width, st.Ellipsis))
	}
	lines = append(lines, "", st.Dim.Render(wrap("Any key closes this list.", m.width)))
	return strings.Join(lines, "\n")
}
