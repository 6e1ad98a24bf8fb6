package ui

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"bty/catalog"
	"bty/disks"
	"bty/flash"
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
	// CanReboot offers reboot on the done screen. The wizard does not reboot:
	// Run's Outcome says the user asked, and the caller does it.
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
	// Flashed are the targets written successfully, in order.
	Flashed []string
	// Reboot: the user asked to reboot from the done screen.
	Reboot bool
	// Err is why the wizard ended badly: the error on screen when the user
	// quit from the error screen, context.Canceled when a flash was cancelled
	// on the way out, the context's error when it was cancelled (a signal).
	// Nil when the user quit otherwise.
	Err error
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

// errCancelled is a flash the user cancelled, as the error screen says it.
type errCancelled struct{}

func (errCancelled) Error() string { return "cancelled at your request" }
func (errCancelled) Unwrap() error { return context.Canceled }

// BackMsg: the user asked for the previous screen (esc).
type BackMsg struct{}

// Results of the work the root model starts.
type (
	imagesLoadedMsg struct {
		gen    int
		rows   []catalog.Entry
		banner []string
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
		res *flash.Result
		err error
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
	case p.info.Format == flash.Raw && p.info.ImageSize == read:
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
	if f == catalog.FormatRaw {
		c.ImageSize = p.size()
	}
	if p.info.ImageSize > 0 {
		// Exact or a lower bound: either way a smaller disk cannot hold it.
		c.ImageSize = p.info.ImageSize
	}
	if fs, ok := p.image.Source.(catalog.FileSource); ok {
		c.ImagePath = fs.Path
	}
	if fi, err := os.Stat(root); root != "" && err == nil && fi.IsDir() {
		c.ImageRoot = root
	}
	return c
}

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
	resolveGen  int
	targetsGen  int

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
		m.imagesGen = 1
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
		if fs, ok := res.Source.(catalog.FileSource); ok && err == nil {
			// A path given directly: its size, for the plan and the
			// verdicts, is the file's.
			if fi, err := os.Stat(fs.Path); err == nil {
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
	m.imagesGen++
	m.images.loading = true
	return m.imagesCmd()
}

func (m Model) imagesCmd() tea.Cmd {
	gen, root, cats, be, ctx := m.imagesGen, m.opt.ImageRoot, m.catalogs, m.be, m.ctx
	return func() tea.Msg {
		var lists [][]catalog.Entry
		var banner []string
		if root != "" {
			rows, err := be.ScanRoot(root)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				banner = append(banner, err.Error())
			}
			lists = append(lists, rows)
		}
		for _, src := range cats {
			rows, err := be.LoadCatalog(ctx, src)
			if err != nil {
				msg := oneLine(err)
				if !strings.Contains(msg, src) {
					msg = "catalog " + src + ": " + msg
				}
				banner = append(banner, msg+" (its images are not listed)")
				continue
			}
			lists = append(lists, rows)
		}
		return imagesLoadedMsg{gen: gen, rows: catalog.Merge(lists...), banner: banner}
	}
}

// oneLine is an error's message on one line (an invalid catalog lists its
// problems on several).
func oneLine(err error) string {
	s := err.Error()
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
	opt := flash.Options{
		SHA256:     pl.sha256,
		Size:       pl.image.Size,
		FormatHint: pl.image.Format,
		Verify:     pl.verify,
		Progress: func(p flash.Progress) {
			select {
			case ch <- progressMsg{p}:
			default: // the screen is behind: this report is dropped, the next one is newer
			}
		},
	}
	return func() tea.Msg {
		go func() {
			res, err := fl(ctx, pl.image.Source, pl.target.Path, opt)
			ch <- flashDoneMsg{res: res, err: err}
		}()
		return <-ch
	}
}

func waitFlash(ch chan tea.Msg) tea.Cmd {
	return func() tea.Msg { return <-ch }
}

// Update moves between the screens.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	m, cmd := m.update(msg)
	m.syncKeys()
	return m, cmd
}

func (m Model) update(msg tea.Msg) (Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.setSize(msg.Width, msg.Height)
		return m, nil
	case interruptMsg:
		m.outcome.Err = m.ctx.Err()
		if m.outcome.Err == nil {
			m.outcome.Err = context.Canceled
		}
		if m.cancel != nil {
			m.cancel()
			m.quitAfter = true
			m.progress.cancelling = true
			return m, nil
		}
		return m, tea.Quit
	case tea.KeyPressMsg:
		if m.screen != screenProgress && key.Matches(msg, m.keys.Quit, m.keys.Kill) {
			if m.screen == screenError {
				m.outcome.Err = m.failure.err
			}
			return m, tea.Quit
		}
		return m.updateScreen(msg)

	case imagesLoadedMsg:
		if msg.gen != m.imagesGen {
			return m, nil
		}
		m.images.setRows(msg.rows, msg.banner)
		if !m.sourceFixed && !m.sourceSeen && m.opt.Image == "" {
			m.sourceSeen = true
			if len(msg.rows) == 0 && len(msg.banner) == 0 && m.screen == screenImages {
				m.source.canBack = false
				m.screen = screenSource
			}
		}
		return m, nil
	case RefreshImagesMsg:
		return m, m.loadImages()
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
			problem = "could not list the disks: " + msg.err.Error()
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
			return m, m.startFlash()
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
	phase := m.progress.p.Phase
	m.cancel, m.flashCh = nil, nil
	if msg.err == nil && msg.res != nil {
		m.outcome.Flashed = append(m.outcome.Flashed, m.plan.target.Path)
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
	if m.quitAfter {
		if m.outcome.Err == nil {
			m.outcome.Err = err
		}
		return m, tea.Quit
	}
	title := "The flash failed"
	if errors.Is(err, context.Canceled) {
		title, err = "The flash was cancelled", errCancelled{}
	}
	after := m.plan.target.Path + " has no partition table now: it will not boot until it is flashed again."
	if phase == flash.PhaseOpening {
		after = "Nothing was written to " + m.plan.target.Path + "."
	}
	m.retry = retryFlash
	return m.fail(title, err, after, screenProgress, screenDisks), nil
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

// syncKeys enables the bindings of the current screen in its current state.
func (m *Model) syncKeys() {
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
	m.keys = k
}

func (m Model) helpBindings() []key.Binding {
	switch m.screen {
	case screenSource:
		return m.source.help(m.keys)
	case screenImages:
		return m.images.help(m.keys)
	case screenDisks:
		return m.disks.help(m.keys)
	case screenConfirm:
		return m.confirm.help(m.keys)
	case screenProgress:
		return m.progress.help(m.keys)
	case screenDone:
		return m.done.help(m.keys)
	case screenError:
		return m.failure.help(m.keys)
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
	lines = append(lines, "", ansi.Truncate(m.help.ShortHelpView(m.helpBindings()), w, st.Ellipsis))
	return strings.Join(lines, "\n")
}
