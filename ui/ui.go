package ui

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"bty/catalog"
	"bty/disks"
)

// screen is one step of the wizard, in the order of the top line.
type screen int

const (
	screenSource screen = iota
	screenImages
	screenDisks
	screenConfirm
	screenProgress
	screenDone
	screenError
	screenCount // the number of screens
)

// page is what the root model asks of a screen: each screen is a small model
// in its file, and the root reaches the one shown through page, so that going
// over the screens is one line. The root keeps each screen in a field of its
// own type for what is particular to it (the rows it shows, the plan).
type page interface {
	// Update takes a key or a message while the screen is shown.
	Update(msg tea.Msg, k KeyMap) tea.Cmd
	// View draws the body: the lines between the top line and the help line.
	View(st Styles) string
	// SetSize is the body's size in cells.
	SetSize(w, h int)
	// keys enables the bindings that work on the screen in its state
	// (KeyMap.only), so the help line never shows a dead key.
	keys(k *KeyMap)
	// help is the order of the bindings on the help line.
	help(k KeyMap) []key.Binding
}

// page is screen s of m: a pointer into m, so what a method with a Model
// value receiver changes through it stays in that method's copy, which it
// returns.
func (m *Model) page(s screen) page {
	switch s {
	case screenSource:
		return &m.source
	case screenImages:
		return &m.images
	case screenDisks:
		return &m.disks
	case screenConfirm:
		return &m.confirm
	case screenProgress:
		return &m.progress
	case screenDone:
		return &m.done
	}
	return &m.failure
}

// retry is what the error screen's retry does.
type retry int

const (
	retryOpen    retry = iota // open the chosen row again
	retryPrefill              // resolve --image again
	retryFlash                // flash the same plan again
)

// Model is the wizard: the screen enum, the error state, and one model per
// screen. It moves source -> images -> disks -> confirm -> progress -> done,
// with the error screen reachable from the steps that do work.
type Model struct {
	opt  Options
	be   Backend
	res  Resolver
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
		res:         opt.Resolver,
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
	if m.res == nil {
		m.res = CatalogResolver(&catalog.Resolver{})
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
		return m.listLoaded(msg)
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
		return m.resolved(msg)
	case RefreshTargetsMsg:
		return m, m.loadTargets()
	case targetsLoadedMsg:
		return m.targetsLoaded(msg)
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
		return m.retryStep()
	case BackMsg:
		return m.back()
	}
	return m.updateScreen(msg)
}

// resolved takes an opened image: on to the disks, or the error screen.
func (m Model) resolved(msg resolvedMsg) (Model, tea.Cmd) {
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
}

// targetsLoaded takes a list of targets; the first one applies --disk.
func (m Model) targetsLoaded(msg targetsLoadedMsg) (Model, tea.Cmd) {
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
}

// retryStep is the error screen's retry: the step that failed, again.
func (m Model) retryStep() (Model, tea.Cmd) {
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
}

// prefillTarget applies --disk to the first list of targets: a target that
// may be written opens the confirmation; otherwise the disk screen says why.
func (m Model) prefillTarget(spec string) (Model, tea.Cmd) {
	t, err := findTarget(m.disks.targets, spec)
	switch {
	case err != nil && errors.Is(err, disks.ErrNotFound):
		if m.disks.problem == "" {
			m.disks.problem = fmt.Sprintf("--disk %s: no such disk; choose one below", spec)
		}
		return m, nil
	case err != nil:
		m.disks.problem = fmt.Sprintf("--disk %s: %s; choose one below", spec, plainText(err))
		return m, nil
	case t.Verdict.Level == disks.Refused:
		m.disks.focus(t.Path)
		m.disks.problem = fmt.Sprintf("--disk %s is refused: %s", spec, strings.Join(t.Verdict.Reasons, "; "))
		return m, nil
	}
	m.disks.focus(t.Path)
	return m.toConfirm(t)
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
	return m, m.page(m.screen).Update(msg, m.keys)
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
	m.page(m.screen).keys(&k)
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

func (m Model) helpBindingsOf(k KeyMap) []key.Binding { return m.page(m.screen).help(k) }

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
	for s := range screenCount {
		m.page(s).SetSize(m.bodySize())
	}
}
