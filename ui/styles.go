package ui

import (
	"image/color"
	"strings"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/textinput"
	"charm.land/lipgloss/v2"
)

// Styles is every style and glyph the wizard draws with. DefaultStyles is the
// look for a colour terminal; PlainStyles is ASCII without colour, for NO_COLOR,
// the Linux console and serial lines.
type Styles struct {
	Plain bool // ASCII glyphs, no colour

	Title    lipgloss.Style // "bty" on the top line
	Step     lipgloss.Style // a step of the breadcrumb
	StepNow  lipgloss.Style // the current step
	Rule     lipgloss.Style // the line under the title
	Heading  lipgloss.Style // a screen's first line
	Column   lipgloss.Style // table column headers
	Selected lipgloss.Style // the row under the cursor
	Dim      lipgloss.Style // refused disks, secondary text
	Label    lipgloss.Style // "Image", "Target" on the confirmation
	Good     lipgloss.Style // verified, matched
	Warn     lipgloss.Style // banners, warnings
	Danger   lipgloss.Style // "all data ... will be destroyed", refusals
	ErrorBox lipgloss.Style // the error screen's message
	Input    textinput.Styles
	Help     help.Styles

	// Glyphs.
	Cursor   string // before the selected row
	RuleChar string
	Sep      string // between breadcrumb steps
	Ellipsis string
	Above    string // before "3 more" above a scrolled list
	Below    string // before "5 more" below it
	BarFull  rune
	BarEmpty rune
}

// DefaultStyles is the look on a terminal with colour and Unicode.
func DefaultStyles() Styles {
	var (
		colAccent = lipgloss.Color("#7D56F4")
		colDim    = lipgloss.Color("#767676")
		colGood   = lipgloss.Color("#2EA043")
		colWarn   = lipgloss.Color("#D29922")
		colDanger = lipgloss.Color("#F85149")
		colText   = lipgloss.Color("#E0E0E0")
	)
	s := Styles{
		Title:    lipgloss.NewStyle().Bold(true).Foreground(colAccent),
		Step:     lipgloss.NewStyle().Foreground(colDim),
		StepNow:  lipgloss.NewStyle().Bold(true).Foreground(colText),
		Rule:     lipgloss.NewStyle().Foreground(colDim),
		Heading:  lipgloss.NewStyle().Bold(true),
		Column:   lipgloss.NewStyle().Bold(true).Foreground(colDim),
		Selected: lipgloss.NewStyle().Bold(true).Foreground(colAccent),
		Dim:      lipgloss.NewStyle().Foreground(colDim),
		Label:    lipgloss.NewStyle().Foreground(colDim),
		Good:     lipgloss.NewStyle().Foreground(colGood),
		Warn:     lipgloss.NewStyle().Foreground(colWarn),
		Danger:   lipgloss.NewStyle().Bold(true).Foreground(colDanger),
		ErrorBox: lipgloss.NewStyle().Foreground(colDanger),
		Help:     help.DefaultDarkStyles(),
		Cursor:   "› ",
		RuleChar: "─",
		Sep:      " › ",
		Ellipsis: "…",
		Above:    "↑",
		Below:    "↓",
		BarFull:  '█',
		BarEmpty: '░',
	}
	s.Input = inputStyles(lipgloss.NewStyle().Foreground(colAccent), lipgloss.NewStyle().Foreground(colDim), colAccent)
	return s
}

// PlainStyles is the ASCII look without colour: NO_COLOR, TERM=linux, serial
// consoles and BMC video redirects. Emphasis is bold and reverse video only.
func PlainStyles() Styles {
	plain := lipgloss.NewStyle()
	bold := lipgloss.NewStyle().Bold(true)
	s := Styles{
		Plain:    true,
		Title:    bold,
		Step:     plain,
		StepNow:  bold,
		Rule:     plain,
		Heading:  bold,
		Column:   bold,
		Selected: lipgloss.NewStyle().Reverse(true),
		Dim:      plain,
		Label:    plain,
		Good:     plain,
		Warn:     bold,
		Danger:   bold,
		ErrorBox: plain,
		Help: help.Styles{
			Ellipsis: plain, ShortKey: bold, ShortDesc: plain, ShortSeparator: plain,
			FullKey: bold, FullDesc: plain, FullSeparator: plain,
		},
		Cursor:   "> ",
		RuleChar: "-",
		Sep:      " > ",
		Ellipsis: "~",
		Above:    "^",
		Below:    "v",
		BarFull:  '#',
		BarEmpty: '.',
	}
	s.Input = inputStyles(plain, plain, nil)
	return s
}

func inputStyles(prompt, placeholder lipgloss.Style, cursor color.Color) textinput.Styles {
	st := textinput.Styles{
		Focused: textinput.StyleState{Prompt: prompt, Placeholder: placeholder},
		Blurred: textinput.StyleState{Prompt: prompt, Placeholder: placeholder},
	}
	st.Cursor.Color = cursor
	st.Cursor.Blink = false // a static cursor: no timer, steady over serial
	return st
}

// PlainTerminal reports whether the plain look suits the terminal: NO_COLOR is
// set, TERM is the Linux console, a VT-class or dumb terminal (serial lines), or
// tty, the terminal's device, is a serial port or the kernel console.
func PlainTerminal(getenv func(string) string, tty string) bool {
	if getenv("NO_COLOR") != "" {
		return true
	}
	switch term := getenv("TERM"); {
	case term == "", term == "linux", term == "dumb", strings.HasPrefix(term, "vt"):
		return true
	}
	for _, p := range []string{"/dev/ttyS", "/dev/ttyAMA", "/dev/ttyUSB", "/dev/hvc", "/dev/console"} {
		if strings.HasPrefix(tty, p) {
			return true
		}
	}
	return false
}
