package ui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"

	"bty/catalog"
	"bty/units"
)

// ImageChosenMsg: the user chose an image row.
type ImageChosenMsg struct{ Entry catalog.Entry }

// RefreshImagesMsg: the user asked to list the images again.
type RefreshImagesMsg struct{}

// StopLoadingMsg: the user gave up waiting for the catalogs still loading.
type StopLoadingMsg struct{}

// imagesScreen is the table of images: the image root's, then each catalog's.
// A catalog that failed to load is a banner above the rows that did load. The
// image root's rows can be chosen while catalogs still load; the status line
// names those, and esc stops waiting for them.
type imagesScreen struct {
	root       string
	rows       []catalog.Entry
	shown      []int // indices into rows that match the filter
	listCursor       // into shown
	filtering  bool
	filter     textinput.Model
	loading    bool     // the image root is not listed yet
	pending    []string // catalogs still loading
	status     string   // what is happening: "Opening debian.img..."
	banner     []string // catalogs that could not be loaded
	canBack    bool     // esc returns to the source screen
	width      int
	height     int
}

func newImagesScreen(root string, st Styles) imagesScreen {
	f := textinput.New()
	f.Prompt = "/"
	f.Placeholder = "name"
	f.SetStyles(st.Input)
	return imagesScreen{root: root, filter: f, loading: true}
}

func (s *imagesScreen) SetSize(w, h int) {
	s.width, s.height = w, h
	s.filter.SetWidth(max(10, w-20))
	s.scroll()
}

// setRows replaces the rows as they load; banner lists the catalogs that
// failed, pending those still loading. The cursor stays on its row.
func (s *imagesScreen) setRows(rows []catalog.Entry, banner, pending []string) {
	keep, had := s.selected()
	s.rows, s.banner, s.pending, s.loading = rows, banner, pending, false
	s.applyFilter()
	for i, idx := range s.shown {
		if had && s.rows[idx].Src == keep.Src && s.rows[idx].Name == keep.Name {
			s.cursor = i
		}
	}
	s.scroll()
}

func (s *imagesScreen) applyFilter() {
	q := strings.ToLower(strings.TrimSpace(s.filter.Value()))
	s.shown = s.shown[:0:0]
	for i, r := range s.rows {
		if q == "" || strings.Contains(strings.ToLower(r.Name), q) || strings.Contains(strings.ToLower(r.From), q) {
			s.shown = append(s.shown, i)
		}
	}
	s.cursor = min(s.cursor, max(0, len(s.shown)-1))
	s.scroll()
}

// selected is the row under the cursor.
func (s imagesScreen) selected() (catalog.Entry, bool) {
	if s.cursor < len(s.shown) {
		return s.rows[s.shown[s.cursor]], true
	}
	return catalog.Entry{}, false
}

func (s imagesScreen) busy() bool { return s.loading || s.status != "" }

func (s imagesScreen) keys(k *KeyMap) {
	if s.filtering {
		k.only(&k.Choose, &k.ClearFilter, &k.Kill)
		k.Choose.SetHelp("enter", "apply filter")
		return
	}
	k.only(&k.Quit, &k.Kill)
	if s.busy() {
		return
	}
	_, ok := s.selected()
	k.Up.SetEnabled(len(s.shown) > 1)
	k.Down.SetEnabled(len(s.shown) > 1)
	k.Choose.SetEnabled(ok)
	k.Filter.SetEnabled(len(s.rows) > 0)
	k.ClearFilter.SetEnabled(s.filter.Value() != "")
	k.Refresh.SetEnabled(true)
	k.StopLoading.SetEnabled(len(s.pending) > 0 && s.filter.Value() == "")
	k.Back.SetEnabled(s.canBack && s.filter.Value() == "" && len(s.pending) == 0)
}

func (s imagesScreen) help(k KeyMap) []key.Binding {
	return []key.Binding{k.Up, k.Choose, k.Filter, k.ClearFilter, k.StopLoading, k.Refresh, k.Back, k.Quit}
}

func (s *imagesScreen) Update(msg tea.Msg, k KeyMap) tea.Cmd {
	km, ok := msg.(tea.KeyPressMsg)
	if s.filtering {
		switch {
		case ok && key.Matches(km, k.Choose):
			s.filtering = false
			s.filter.Blur()
			return nil
		case ok && key.Matches(km, k.ClearFilter):
			s.filtering = false
			s.filter.Blur()
			s.filter.Reset()
			s.applyFilter()
			return nil
		}
		var cmd tea.Cmd
		s.filter, cmd = s.filter.Update(msg)
		s.applyFilter()
		return cmd
	}
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
		if e, ok := s.selected(); ok {
			return emit(ImageChosenMsg{Entry: e})
		}
	case key.Matches(km, k.Filter):
		s.filtering = true
		return s.filter.Focus()
	case key.Matches(km, k.ClearFilter):
		s.filter.Reset()
		s.applyFilter()
	case key.Matches(km, k.Refresh):
		return emit(RefreshImagesMsg{})
	case key.Matches(km, k.StopLoading):
		return emit(StopLoadingMsg{})
	case key.Matches(km, k.Back):
		return emit(BackMsg{})
	}
	return nil
}

// listHeight is how many rows fit; when they do not all fit, a line above
// them says how many are hidden above.
func (s imagesScreen) listHeight() int {
	h := s.height - 4 - len(s.bannerLines(Styles{})) // heading, column header, blank, status
	if s.filtering || s.filter.Value() != "" {
		h--
	}
	if len(s.shown) > h {
		h--
	}
	return max(1, h)
}

func (s *imagesScreen) scroll() { s.follow(len(s.shown), s.listHeight()) }

func (s imagesScreen) bannerLines(st Styles) []string {
	var out []string
	for _, b := range s.banner {
		for _, l := range strings.Split(wrap("! "+b, max(20, s.width)), "\n") {
			out = append(out, st.Warn.Render(l))
		}
	}
	return out
}

// columns are the widths of name and source; the others are fixed.
func (s imagesScreen) columns() (name, source int) {
	rest := max(20, s.width-2-7-10-7-1)
	name = rest * 3 / 5
	return name, rest - name
}

func (s imagesScreen) View(st Styles) string {
	var lines []string
	lines = append(lines, st.Heading.Render("Choose an image"))
	lines = append(lines, s.bannerLines(st)...)
	if s.filtering || s.filter.Value() != "" {
		if s.filtering {
			lines = append(lines, s.filter.View())
		} else {
			lines = append(lines, st.Dim.Render("filter: "+s.filter.Value()))
		}
	}
	nw, sw := s.columns()
	lines = append(lines, st.Column.Render("  "+fit("NAME", nw, st.Ellipsis)+" "+fit("FORMAT", 6, "")+" "+fitLeft("SIZE", 9)+" "+fit("SHA256", 6, "")+" "+fit("SOURCE", sw, st.Ellipsis)))
	h := s.listHeight()
	above, below := s.more(len(s.shown), h, st)
	if len(s.shown) > h {
		lines = append(lines, above)
	}
	switch {
	case s.loading:
		lines = append(lines, "  Loading images...")
	case len(s.rows) == 0 && len(s.pending) > 0:
		lines = append(lines, "  Loading...")
	case len(s.rows) == 0:
		msg := "No images. Put image files in " + s.root + " and press r"
		if s.root == "" {
			msg = "No images"
		}
		if s.canBack {
			msg += ", or press esc to choose a catalog"
		}
		lines = append(lines, st.Dim.Render(wrap("  "+msg+".", s.width)))
	case len(s.shown) == 0:
		lines = append(lines, st.Dim.Render(fmt.Sprintf("  No image matches %q.", s.filter.Value())))
	}
	for i := s.offset; i < len(s.shown) && i < s.offset+h; i++ {
		e := s.rows[s.shown[i]]
		format, size, sum := formatName(e.Format), "?", "-"
		if format == "" {
			format = "?"
		}
		if e.Size > 0 {
			size = units.Bytes(e.Size)
		}
		switch {
		case e.SHA256 != "":
			sum = "known"
		case e.Pending:
			sum = "wait" // its server is still hashing it: flashable once listed
		}
		from := e.From
		if from == s.root {
			from = "image root"
		}
		row := fit(e.Name, nw, st.Ellipsis) + " " + fit(format, 6, "") + " " + fitLeft(size, 9) + " " + fit(sum, 6, "") + " " + fit(from, sw, st.Ellipsis)
		if i == s.cursor {
			lines = append(lines, st.Selected.Render(st.Cursor+row))
		} else {
			lines = append(lines, "  "+row)
		}
	}
	status := s.status
	switch {
	case status != "" || s.loading:
	case len(s.pending) > 0:
		status = "Loading the catalog " + strings.Join(s.pending, ", ") + "... (esc stops waiting)"
		if len(s.pending) > 1 {
			status = "Loading the catalogs " + strings.Join(s.pending, ", ") + "... (esc stops waiting)"
		}
	case len(s.shown) != len(s.rows):
		status = fmt.Sprintf("%d of %s", len(s.shown), plural(len(s.rows), "image"))
	default:
		status = plural(len(s.rows), "image")
	}
	lines = append(lines, below, st.Dim.Render(clip(status, s.width, st.Ellipsis)))
	return strings.Join(lines, "\n")
}

// fitLeft right-aligns s in width cells.
func fitLeft(s string, width int) string {
	if len(s) >= width {
		return s
	}
	return strings.Repeat(" ", width-len(s)) + s
}
