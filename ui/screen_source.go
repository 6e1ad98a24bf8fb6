package ui

import (
	"strings"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
)

// SourceChosenMsg: the user chose where images come from. Catalogs is empty
// for the image root alone.
type SourceChosenMsg struct{ Catalogs []string }

// sourceScreen asks where the images come from: the image root alone, the
// default catalog, or a catalog the user types (a path, URL or oras:// ref,
// case preserved).
type sourceScreen struct {
	root           string // the image root, shown on the first choice
	defaultCatalog string // "" when none is offered
	cursor         int
	typing         bool // the custom source's input has focus
	input          textinput.Model
	problem        string // why the typed source was not taken
	canBack        bool   // reached from the image screen, which esc returns to
	width, height  int
}

// Choices, in order; choiceDefault is absent without a default catalog.
const (
	choiceLocal = iota
	choiceDefault
	choiceCustom
)

func newSourceScreen(root, defaultCatalog string, st Styles) sourceScreen {
	in := textinput.New()
	in.Prompt = "source: "
	in.Placeholder = "/path/catalog.toml, https://... or oras://..."
	in.SetStyles(st.Input)
	return sourceScreen{root: root, defaultCatalog: defaultCatalog, input: in}
}

func (s sourceScreen) choices() []int {
	if s.defaultCatalog == "" {
		return []int{choiceLocal, choiceCustom}
	}
	return []int{choiceLocal, choiceDefault, choiceCustom}
}

func (s *sourceScreen) SetSize(w, h int) {
	s.width, s.height = w, h
	s.input.SetWidth(max(10, w-len(s.input.Prompt)-6))
}

// keys enables the bindings that work now.
func (s sourceScreen) keys(k *KeyMap) {
	if s.typing {
		k.only(&k.Choose, &k.Back, &k.Kill)
		k.Choose.SetHelp("enter", "use this source")
		k.Back.SetHelp("esc", "cancel")
		return
	}
	k.only(&k.Up, &k.Down, &k.Choose, &k.Quit, &k.Kill)
	k.Back.SetEnabled(s.canBack)
}

func (s sourceScreen) help(k KeyMap) []key.Binding {
	return []key.Binding{k.Up, k.Choose, k.Back, k.Quit}
}

func (s *sourceScreen) Update(msg tea.Msg, k KeyMap) tea.Cmd {
	km, ok := msg.(tea.KeyPressMsg)
	if !ok {
		if s.typing {
			var cmd tea.Cmd
			s.input, cmd = s.input.Update(msg)
			return cmd
		}
		return nil
	}
	if s.typing {
		switch {
		case key.Matches(km, k.Back):
			s.typing, s.problem = false, ""
			s.input.Blur()
			return nil
		case key.Matches(km, k.Choose):
			src := strings.TrimSpace(s.input.Value())
			if src == "" {
				s.problem = "type a catalog: a path, an http(s):// URL or an oras:// reference"
				return nil
			}
			s.typing, s.problem = false, ""
			s.input.Blur()
			return emit(SourceChosenMsg{Catalogs: []string{src}})
		}
		var cmd tea.Cmd
		s.input, cmd = s.input.Update(msg)
		return cmd
	}
	n := len(s.choices())
	switch {
	case key.Matches(km, k.Up):
		s.cursor = (s.cursor + n - 1) % n
	case key.Matches(km, k.Down):
		s.cursor = (s.cursor + 1) % n
	case key.Matches(km, k.Back):
		return emit(BackMsg{})
	case key.Matches(km, k.Choose):
		switch s.choices()[s.cursor] {
		case choiceLocal:
			return emit(SourceChosenMsg{})
		case choiceDefault:
			return emit(SourceChosenMsg{Catalogs: []string{s.defaultCatalog}})
		case choiceCustom:
			// The field starts empty each time: what was typed before was
			// taken, or given up with esc.
			s.typing = true
			s.input.Reset()
			return s.input.Focus()
		}
	}
	return nil
}

func (s sourceScreen) View(st Styles) string {
	var b strings.Builder
	b.WriteString(st.Heading.Render("Where do the images come from?") + "\n\n")
	for i, c := range s.choices() {
		var title, desc string
		switch c {
		case choiceLocal:
			title, desc = "Local images only", "the image root "+s.root
			if s.root == "" {
				desc = "no image root: images typed as paths or URLs"
			}
		case choiceDefault:
			title, desc = "The default catalog", s.defaultCatalog
		case choiceCustom:
			title, desc = "Another catalog...", "a path, an http(s):// URL or an oras:// reference"
		}
		line := "  " + title
		if i == s.cursor {
			line = st.Selected.Render(st.Cursor + title)
		}
		b.WriteString(line + "\n")
		b.WriteString(st.Dim.Render(clip("    "+desc, s.width, st.Ellipsis)) + "\n")
	}
	if s.typing {
		b.WriteString("\n  " + s.input.View() + "\n")
	}
	if s.problem != "" {
		b.WriteString("\n" + st.Warn.Render(clip("  "+s.problem, s.width, st.Ellipsis)) + "\n")
	}
	b.WriteString("\n" + st.Dim.Render(wrap("Images in the image root are always listed; a catalog adds its images after them.", s.width)))
	return b.String()
}

// emit is a command that delivers msg.
func emit(msg tea.Msg) tea.Cmd {
	return func() tea.Msg { return msg }
}
