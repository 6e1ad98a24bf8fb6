package ui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"bty/disks"
	"bty/units"
)

// TargetChosenMsg: the user chose a disk (or file) that may be written.
type TargetChosenMsg struct{ Target Target }

// RefreshTargetsMsg: the user asked to list the disks again (hot-plug).
type RefreshTargetsMsg struct{}

// disksScreen lists the targets with their verdicts. Refused disks are shown
// dimmed with the reasons, or hidden; only a disk that is not refused can be
// chosen.
type disksScreen struct {
	image       string // the chosen image's name, for the heading
	targets     []Target
	shown       []int // indices into targets
	listCursor        // into shown
	showRefused bool
	loading     bool
	problem     string // the listing failed, or --disk named nothing usable
	width       int
	height      int
}

func newDisksScreen() disksScreen {
	return disksScreen{showRefused: true, loading: true}
}

func (s *disksScreen) SetSize(w, h int) {
	s.width, s.height = w, h
	s.scroll()
}

// setTargets replaces the list after a load and keeps the cursor on the same
// path when it is still there.
func (s *disksScreen) setTargets(ts []Target, problem string) {
	var keep string
	if t, ok := s.selected(); ok {
		keep = t.Path
	}
	s.targets, s.problem, s.loading = ts, problem, false
	s.applyToggle()
	s.place(keep)
}

// focus puts the cursor on the target with that path, showing refused
// targets if it is one.
func (s *disksScreen) focus(path string) {
	for _, t := range s.targets {
		if t.Path == path && t.Verdict.Level == disks.Refused && !s.showRefused {
			s.showRefused = true
			s.applyToggle()
		}
	}
	s.place(path)
}

// place puts the cursor on the target with path keep if it is shown, else
// where a stray enter is harmless: on the first target a y confirms, else on
// the first refused one, else on none. It never starts on a disk whose name
// must be typed: such a disk is chosen by moving to it.
func (s *disksScreen) place(keep string) {
	s.cursor = -1
	for i, idx := range s.shown {
		if keep != "" && s.targets[idx].Path == keep {
			s.cursor = i
		}
	}
	for _, level := range []disks.Level{disks.OK, disks.Refused} {
		for i, idx := range s.shown {
			if s.cursor < 0 && s.targets[idx].Verdict.Level == level {
				s.cursor = i
			}
		}
	}
	s.scroll()
}

func (s *disksScreen) applyToggle() {
	s.shown = s.shown[:0:0]
	for i, t := range s.targets {
		if s.showRefused || t.Verdict.Level != disks.Refused {
			s.shown = append(s.shown, i)
		}
	}
	s.cursor = min(s.cursor, len(s.shown)-1)
	s.scroll()
}

func (s disksScreen) selected() (Target, bool) {
	if s.cursor >= 0 && s.cursor < len(s.shown) {
		return s.targets[s.shown[s.cursor]], true
	}
	return Target{}, false
}

func (s disksScreen) refused() int {
	n := 0
	for _, t := range s.targets {
		if t.Verdict.Level == disks.Refused {
			n++
		}
	}
	return n
}

func (s disksScreen) keys(k *KeyMap) {
	k.only(&k.Back, &k.Quit, &k.Kill)
	if s.loading {
		return
	}
	t, ok := s.selected()
	k.Up.SetEnabled(len(s.shown) > 1 || !ok && len(s.shown) > 0)
	k.Down.SetEnabled(len(s.shown) > 1 || !ok && len(s.shown) > 0)
	k.Choose.SetEnabled(ok && t.Verdict.Level != disks.Refused)
	k.Refresh.SetEnabled(true)
	k.ToggleRefused.SetEnabled(s.refused() > 0)
	if s.showRefused {
		k.ToggleRefused.SetHelp("a", "hide refused")
	} else {
		k.ToggleRefused.SetHelp("a", "show refused")
	}
}

func (s disksScreen) help(k KeyMap) []key.Binding {
	return []key.Binding{k.Up, k.Choose, k.ToggleRefused, k.Refresh, k.Back, k.Quit}
}

func (s *disksScreen) Update(msg tea.Msg, k KeyMap) tea.Cmd {
	km, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil
	}
	switch {
	case key.Matches(km, k.Up):
		s.cursor = max(0, s.cursor-1)
		s.scroll()
	case key.Matches(km, k.Down):
		s.cursor = min(len(s.shown)-1, s.cursor+1)
		s.scroll()
	case key.Matches(km, k.Choose):
		if t, ok := s.selected(); ok && t.Verdict.Level != disks.Refused {
			return emit(TargetChosenMsg{Target: t})
		}
	case key.Matches(km, k.ToggleRefused):
		keep := ""
		if t, ok := s.selected(); ok {
			keep = t.Path
		}
		s.showRefused = !s.showRefused
		s.applyToggle()
		s.place(keep)
	case key.Matches(km, k.Refresh):
		s.loading = true
		return emit(RefreshTargetsMsg{})
	case key.Matches(km, k.Back):
		return emit(BackMsg{})
	}
	return nil
}

func (s disksScreen) problemLines(st Styles) []string {
	if s.problem == "" {
		return nil
	}
	return strings.Split(st.Warn.Render(wrap("! "+s.problem, max(20, s.width))), "\n")
}

// listHeight is how many targets fit; each takes two lines.
func (s disksScreen) listHeight() int {
	return max(1, (s.height-4-len(s.problemLines(Styles{})))/2)
}

func (s *disksScreen) scroll() { s.follow(len(s.shown), s.listHeight()) }

func (s disksScreen) View(st Styles) string {
	var lines []string
	head := "Choose the target disk"
	if s.image != "" {
		head += " for " + s.image
	}
	lines = append(lines, st.Heading.Render(clip(head, s.width, st.Ellipsis)))
	lines = append(lines, s.problemLines(st)...)
	h := s.listHeight()
	above, below := s.more(len(s.shown), h, st)
	lines = append(lines, above)
	switch {
	case s.loading:
		lines = append(lines, "  Looking for disks...")
	case len(s.targets) == 0:
		lines = append(lines, st.Dim.Render("  No disks found. Plug one in and press r."))
	case len(s.shown) == 0:
		lines = append(lines, st.Dim.Render(fmt.Sprintf("  Every disk is refused (%d). Press a to show them, or plug one in and press r.", len(s.targets))))
	}
	pathW := 14
	for _, idx := range s.shown {
		pathW = max(pathW, len(s.targets[idx].Path))
	}
	pathW = min(pathW, max(14, s.width*2/5))
	for i := s.offset; i < len(s.shown) && i < s.offset+h; i++ {
		t := s.targets[s.shown[i]]
		l1, l2 := s.row(t, pathW, st)
		prefix := "  "
		if i == s.cursor {
			prefix = st.Cursor
		}
		l1 = clip(prefix+l1, s.width, st.Ellipsis)
		l2 = clip("    "+l2, s.width, st.Ellipsis)
		switch {
		case i == s.cursor:
			l1 = st.Selected.Render(l1)
			if t.Verdict.Level == disks.Refused {
				l2 = st.Danger.Render(l2)
			}
		case t.Verdict.Level == disks.Refused:
			l1, l2 = st.Dim.Render(l1), st.Dim.Render(l2)
		}
		lines = append(lines, l1, l2)
	}
	status := ""
	switch n := s.refused(); {
	case s.loading:
	case n > 0 && !s.showRefused:
		status = fmt.Sprintf("%s, %d refused and hidden", plural(len(s.targets), "target"), n)
	case n > 0:
		status = fmt.Sprintf("%s, %d refused", plural(len(s.targets), "target"), n)
	default:
		status = plural(len(s.targets), "target")
	}
	if s.cursor < 0 && len(s.shown) > 0 {
		status += "; move to a disk to choose it"
	}
	lines = append(lines, below, st.Dim.Render(clip(status, s.width, st.Ellipsis)))
	return strings.Join(lines, "\n")
}

// row is a target's two lines: what it is, then its verdict.
func (s disksScreen) row(t Target, pathW int, st Styles) (string, string) {
	size := "-"
	switch {
	case t.Size > 0:
		size = units.Bytes(t.Size)
	case t.File:
		size = "file"
	}
	var tags []string
	switch {
	case t.File:
		tags = append(tags, "file")
	default:
		if t.Transport != "" {
			tags = append(tags, t.Transport)
		}
		if t.Removable {
			tags = append(tags, "removable")
		}
	}
	l1 := fitTail(t.Path, pathW, st.Ellipsis) + " " + fitLeft(size, 10) + "  "
	tag := ""
	if len(tags) > 0 {
		tag = "  [" + strings.Join(tags, ", ") + "]"
	}
	switch {
	case t.Model != "":
		l1 += t.Model
	case t.Backing != "":
		// The file is what tells loop devices apart: keep its end.
		const label = "backing file "
		room := s.width - 2 - lipgloss.Width(l1) - len(label) - len(tag)
		l1 += label + strings.TrimRight(fitTail(t.Backing, max(12, room), st.Ellipsis), " ")
	default:
		l1 += "-"
	}
	l1 += tag
	var l2 string
	switch t.Verdict.Level {
	case disks.Refused:
		l2 = "REFUSED: " + strings.Join(t.Verdict.Reasons, "; ")
	case disks.Confirm:
		l2 = fmt.Sprintf("non-removable: you will type %s to confirm", t.Name)
	default:
		switch {
		case t.File:
			l2 = "created or truncated to the image size"
		default:
			l2 = "removable: y confirms"
		}
	}
	if t.Serial != "" {
		l2 += "  (serial " + t.Serial + ")"
	}
	return l1, l2
}
