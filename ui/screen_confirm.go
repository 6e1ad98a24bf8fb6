package ui

import (
	"fmt"
	"strings"

	"bty/units"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
)

// ConfirmedMsg: the user confirmed the plan; the flash starts.
type ConfirmedMsg struct{}

// confirmScreen shows the plan and asks before anything is written. A
// non-removable disk needs its name typed; a removable disk or a file a y. The
// default is no. Values too long for the window wrap; when the whole
// confirmation does not fit (the target, the warning and the prompt above
// all), the screen says how large the window must be and takes no answer.
type confirmScreen struct {
	plan    plan
	st      Styles
	input   textinput.Model
	problem string // the typed name did not match
	width   int
	height  int
}

// minConfirmWidth is the narrowest window the confirmation is drawn in:
// below it the wrapped values would be a few cells each.
const minConfirmWidth = 40

func newConfirmScreen(p plan, st Styles) (confirmScreen, tea.Cmd) {
	in := textinput.New()
	in.Prompt = "> "
	in.CharLimit = 256
	in.SetStyles(st.Input)
	s := confirmScreen{plan: p, st: st, input: in}
	var cmd tea.Cmd
	if p.target.needsName() {
		cmd = s.input.Focus()
	}
	return s, cmd
}

// prompt is the question before the answer: the typed name's input follows it.
func (s confirmScreen) prompt() string {
	if s.plan.target.needsName() {
		return "  Type " + s.plan.target.Name + " to confirm: "
	}
	return "  Flash it? [y/N]"
}

// inputWidth is the typed name's field at window width w.
func (s confirmScreen) inputWidth(w int) int {
	return max(10, min(40, w-lipgloss.Width(s.prompt())-len(s.input.Prompt)-2))
}

// needWidth is the narrowest window that shows the prompt and its input.
func (s confirmScreen) needWidth() int {
	w := minConfirmWidth
	if s.plan.target.needsName() {
		w = max(w, lipgloss.Width(s.prompt())+len(s.input.Prompt)+10+2)
	}
	return w
}

// fits reports whether the whole confirmation is on screen.
func (s confirmScreen) fits() bool {
	return s.width >= s.needWidth() && len(s.lines(s.width)) <= s.height
}

func (s *confirmScreen) SetSize(w, h int) {
	s.width, s.height = w, h
	s.input.SetWidth(s.inputWidth(w))
}

func (s confirmScreen) keys(k *KeyMap) {
	switch {
	case !s.fits():
		k.only(&k.Back, &k.Quit, &k.Kill)
	case s.plan.target.needsName():
		k.only(&k.Confirm, &k.Back, &k.Kill)
	default:
		k.only(&k.Yes, &k.No, &k.Quit, &k.Kill)
		k.Yes.SetHelp("y", "flash")
		k.No.SetHelp("n/esc", "back")
	}
}

func (s confirmScreen) help(k KeyMap) []key.Binding {
	return []key.Binding{k.Yes, k.No, k.Confirm, k.Back, k.Quit}
}

func (s *confirmScreen) Update(msg tea.Msg, k KeyMap) tea.Cmd {
	km, ok := msg.(tea.KeyPressMsg)
	if ok && !s.fits() {
		// Nothing typed or answered counts while part of the question is
		// off screen.
		if key.Matches(km, k.Back) {
			return emit(BackMsg{})
		}
		return nil
	}
	if s.plan.target.needsName() {
		switch {
		case ok && key.Matches(km, k.Back):
			return emit(BackMsg{})
		case ok && key.Matches(km, k.Confirm):
			typed := strings.TrimSpace(s.input.Value())
			if typed == s.plan.target.Name || typed == s.plan.target.Path {
				s.problem = ""
				return emit(ConfirmedMsg{})
			}
			s.problem = fmt.Sprintf("%q is not %s: type %s exactly, or esc to go back", typed, s.plan.target.Name, s.plan.target.Name)
			s.input.Reset()
			return nil
		}
		var cmd tea.Cmd
		s.input, cmd = s.input.Update(msg)
		return cmd
	}
	if !ok {
		return nil
	}
	switch {
	case key.Matches(km, k.Yes):
		return emit(ConfirmedMsg{})
	case key.Matches(km, k.No):
		return emit(BackMsg{})
	}
	return nil
}

func (s confirmScreen) View(st Styles) string {
	if !s.fits() {
		return s.tooSmall(st)
	}
	return strings.Join(s.lines(s.width), "\n")
}

// tooSmall says how large the window must be: at its width, and at 80
// columns, where fewer lines wrap.
func (s confirmScreen) tooSmall(st Styles) string {
	need := func(w int) string { return fmt.Sprintf("%dx%d", w, len(s.lines(w))+chrome) }
	w := max(s.width, s.needWidth())
	sizes := need(w)
	if w < 80 {
		sizes += ", or " + need(80)
	}
	msg := fmt.Sprintf("This window is %dx%d: too small to show the whole confirmation (the image, the target and the warning). It needs %s. Enlarge it, or press esc to go back.",
		s.width, s.height+chrome, sizes)
	return st.Danger.Render("Window too small") + "\n\n" + wrap(msg, max(10, s.width))
}

// lines is the confirmation at width w, one element per screen line.
func (s confirmScreen) lines(w int) []string {
	p, st := s.plan, s.st
	// field is a label and its value; a long value wraps under itself.
	field := func(label, value string) string {
		const indent = 2 + 8 + 1
		vl := strings.Split(wrap(value, max(10, w-indent)), "\n")
		out := "  " + st.Label.Render(fit(label, 8, "")) + " " + vl[0]
		for _, l := range vl[1:] {
			out += "\n" + strings.Repeat(" ", indent) + l
		}
		return out
	}
	var lines []string
	lines = append(lines, st.Heading.Render("Flash this image to this disk?"), "")
	lines = append(lines, field("Image", p.image.Name))
	lines = append(lines, field("Format", p.format()))
	lines = append(lines, field("Size", p.sizeText()))
	if p.sha256 != "" {
		lines = append(lines, field("Digest", "sha256 "+shortDigest(p.sha256, st.Ellipsis)+", checked before the disk can boot"))
	} else {
		lines = append(lines, field("Digest", "none known: computed, not checked"))
	}
	if from := p.from(); from != "" {
		lines = append(lines, field("From", from))
	}
	lines = append(lines, "")
	t := p.target
	lines = append(lines, field("Target", t.Path))
	model := t.Model
	if model == "" {
		model = "-"
	}
	lines = append(lines, field("Model", model))
	if t.Backing != "" {
		lines = append(lines, field("Backing", t.Backing))
	}
	if !t.File {
		serial := t.Serial
		if serial == "" {
			serial = "none reported"
		}
		lines = append(lines, field("Serial", serial))
	}
	size := "grows to the image size"
	if t.Size > 0 {
		size = units.Bytes(t.Size)
	}
	var tags []string
	if t.Transport != "" {
		tags = append(tags, t.Transport)
	}
	switch {
	case t.File:
		tags = append(tags, "regular file")
	case t.Removable:
		tags = append(tags, "removable")
	default:
		tags = append(tags, "non-removable")
	}
	lines = append(lines, field("Size", size+"  ("+strings.Join(tags, ", ")+")"))
	if p.verify {
		lines = append(lines, field("Verify", "read back after writing"))
	}
	lines = append(lines, "")
	for _, l := range strings.Split(wrap("All data on "+t.Path+" will be destroyed.", max(10, w-2)), "\n") {
		lines = append(lines, st.Danger.Render("  "+l))
	}
	lines = append(lines, "")
	if t.needsName() {
		lines = append(lines, "  Type "+st.Heading.Render(t.Name)+" to confirm: "+s.input.View())
	} else {
		lines = append(lines, s.prompt())
	}
	if s.problem != "" {
		for _, l := range strings.Split(wrap(s.problem, max(10, w-2)), "\n") {
			lines = append(lines, st.Warn.Render("  "+l))
		}
	}
	// A field may hold several lines.
	return strings.Split(strings.Join(lines, "\n"), "\n")
}
