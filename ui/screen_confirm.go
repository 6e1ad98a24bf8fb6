package ui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
)

// ConfirmedMsg: the user confirmed the plan; the flash starts.
type ConfirmedMsg struct{}

// confirmScreen shows the plan and asks before anything is written. A
// non-removable disk needs its name typed; a removable disk or a file a y. The
// default is no.
type confirmScreen struct {
	plan    plan
	input   textinput.Model
	problem string // the typed name did not match
	width   int
	height  int
}

func newConfirmScreen(p plan, st Styles) (confirmScreen, tea.Cmd) {
	in := textinput.New()
	in.Prompt = "> "
	in.CharLimit = 256
	in.SetStyles(st.Input)
	s := confirmScreen{plan: p, input: in}
	var cmd tea.Cmd
	if p.target.needsName() {
		cmd = s.input.Focus()
	}
	return s, cmd
}

func (s *confirmScreen) SetSize(w, h int) {
	s.width, s.height = w, h
	s.input.SetWidth(max(10, min(40, w-30)))
}

func (s confirmScreen) keys(k *KeyMap) {
	if s.plan.target.needsName() {
		k.only(&k.Confirm, &k.Back, &k.Kill)
		return
	}
	k.only(&k.Yes, &k.No, &k.Quit, &k.Kill)
	k.Yes.SetHelp("y", "flash")
	k.No.SetHelp("n/esc", "back")
}

func (s confirmScreen) help(k KeyMap) []key.Binding {
	return []key.Binding{k.Yes, k.No, k.Confirm, k.Back, k.Quit}
}

func (s confirmScreen) Update(msg tea.Msg, k KeyMap) (confirmScreen, tea.Cmd) {
	km, ok := msg.(tea.KeyPressMsg)
	if s.plan.target.needsName() {
		switch {
		case ok && key.Matches(km, k.Back):
			return s, emit(BackMsg{})
		case ok && key.Matches(km, k.Confirm):
			typed := strings.TrimSpace(s.input.Value())
			if typed == s.plan.target.Name || typed == s.plan.target.Path {
				s.problem = ""
				return s, emit(ConfirmedMsg{})
			}
			s.problem = fmt.Sprintf("%q is not %s: type %s exactly, or esc to go back", typed, s.plan.target.Name, s.plan.target.Name)
			s.input.Reset()
			return s, nil
		}
		var cmd tea.Cmd
		s.input, cmd = s.input.Update(msg)
		return s, cmd
	}
	if !ok {
		return s, nil
	}
	switch {
	case key.Matches(km, k.Yes):
		return s, emit(ConfirmedMsg{})
	case key.Matches(km, k.No):
		return s, emit(BackMsg{})
	}
	return s, nil
}

func (s confirmScreen) View(st Styles) string {
	p := s.plan
	w := s.width
	field := func(label, value string) string {
		return clip("  "+st.Label.Render(fit(label, 8, ""))+" "+value, w, st.Ellipsis)
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
	if !t.File {
		serial := t.Serial
		if serial == "" {
			serial = "none reported"
		}
		lines = append(lines, field("Serial", serial))
	}
	size := "grows to the image size"
	if t.Size > 0 {
		size = Bytes(t.Size)
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
	lines = append(lines, st.Danger.Render(clip("  All data on "+t.Path+" will be destroyed.", w, st.Ellipsis)), "")
	if t.needsName() {
		lines = append(lines, "  Type "+st.Heading.Render(t.Name)+" to confirm: "+s.input.View())
	} else {
		lines = append(lines, "  Flash it? [y/N]")
	}
	if s.problem != "" {
		lines = append(lines, st.Warn.Render(clip("  "+s.problem, w, st.Ellipsis)))
	}
	return strings.Join(lines, "\n")
}
