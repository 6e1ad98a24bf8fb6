package ui

import (
	"slices"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
)

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

	body := m.page(m.screen).View(st)
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
