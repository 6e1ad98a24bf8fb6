package ui

import (
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
)

// RetryMsg: the user asked to try the failed step again.
type RetryMsg struct{}

// errorScreen shows what failed, as the error's own message (never a stack
// trace), what it left behind, and offers retry and back.
type errorScreen struct {
	title  string // "Could not open the image", "The flash failed"
	err    error
	after  string // what the failure leaves on the disk, "" when nothing
	width  int
	height int
}

func (s *errorScreen) SetSize(w, h int) { s.width, s.height = w, h }

func (s errorScreen) keys(k *KeyMap) {
	k.only(&k.Retry, &k.Back, &k.Quit, &k.Kill)
}

func (s errorScreen) help(k KeyMap) []key.Binding {
	return []key.Binding{k.Retry, k.Back, k.Quit}
}

func (s *errorScreen) Update(msg tea.Msg, k KeyMap) tea.Cmd {
	km, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil
	}
	switch {
	case key.Matches(km, k.Retry):
		return emit(RetryMsg{})
	case key.Matches(km, k.Back):
		return emit(BackMsg{})
	}
	return nil
}

func (s errorScreen) View(st Styles) string {
	w := max(20, s.width-2)
	var lines []string
	lines = append(lines, st.Danger.Render(s.title), "")
	msg := "unknown error"
	if s.err != nil {
		msg = plainText(s.err)
	}
	for _, l := range strings.Split(wrap(msg, w), "\n") {
		lines = append(lines, "  "+st.ErrorBox.Render(l))
	}
	if s.after != "" {
		lines = append(lines, "")
		for _, l := range strings.Split(wrap(s.after, w), "\n") {
			lines = append(lines, "  "+st.Warn.Render(l))
		}
	}
	return strings.Join(lines, "\n")
}
