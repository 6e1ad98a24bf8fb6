package ui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/progress"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"bty/flash"
	"bty/units"
)

// CancelFlashMsg: the user confirmed cancelling the flash; Quit also ends the
// wizard once the flash has stopped.
type CancelFlashMsg struct{ Quit bool }

// progressScreen follows a running flash. ctrl+c and q ask first, and say what
// cancelling leaves on the disk.
type progressScreen struct {
	plan       plan
	p          flash.Progress
	asking     ask
	cancelling bool
	width      int
	height     int
}

type ask int

const (
	askNone ask = iota
	askCancel
	askQuit
)

func newProgressScreen(p plan) progressScreen {
	return progressScreen{plan: p, p: flash.Progress{Phase: flash.PhaseOpening, SourceTotal: -1, ImageSize: -1}}
}

func (s *progressScreen) SetSize(w, h int) { s.width, s.height = w, h }

func (s progressScreen) keys(k *KeyMap) {
	switch {
	case s.cancelling:
		k.only()
	case s.asking != askNone:
		k.only(&k.Yes, &k.No)
		if s.asking == askQuit {
			k.Yes.SetHelp("y", "cancel and quit")
		} else {
			k.Yes.SetHelp("y", "cancel the flash")
		}
		k.No.SetHelp("n/esc", "keep flashing")
	default:
		k.only(&k.Kill, &k.Quit)
		k.Kill.SetHelp("ctrl+c", "cancel")
		k.Quit.SetHelp("q", "cancel and quit")
	}
}

func (s progressScreen) help(k KeyMap) []key.Binding {
	return []key.Binding{k.Yes, k.No, k.Kill, k.Quit}
}

func (s *progressScreen) Update(msg tea.Msg, k KeyMap) tea.Cmd {
	km, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil
	}
	switch {
	case s.asking != askNone && key.Matches(km, k.Yes):
		quit := s.asking == askQuit
		s.asking, s.cancelling = askNone, true
		return emit(CancelFlashMsg{Quit: quit})
	case s.asking != askNone && key.Matches(km, k.No):
		s.asking = askNone
	case key.Matches(km, k.Kill):
		s.asking = askCancel
	case key.Matches(km, k.Quit):
		s.asking = askQuit
	}
	return nil
}

// phaseText says what a phase does.
func phaseText(p flash.Phase) string {
	switch p {
	case flash.PhaseOpening:
		return "opening the image"
	case flash.PhaseWriting:
		return "writing"
	case flash.PhaseFinishing:
		return "checking the digest, writing the first MiB, syncing"
	case flash.PhaseVerifying:
		return "reading back and comparing"
	case flash.PhaseDone:
		return "done"
	}
	return string(p)
}

// bar renders a bar of width cells at fraction f, with its percentage when
// percent is set.
func (st Styles) bar(width int, f float64, percent bool) string {
	opts := []progress.Option{progress.WithWidth(width), progress.WithFillCharacters(st.BarFull, st.BarEmpty)}
	if !percent {
		opts = append(opts, progress.WithoutPercentage())
	}
	if !st.Plain {
		opts = append(opts, progress.WithDefaultBlend())
	}
	b := progress.New(opts...)
	if st.Plain {
		b.FullColor, b.EmptyColor = lipgloss.NoColor{}, lipgloss.NoColor{}
	}
	return b.ViewAs(f)
}

func (s progressScreen) View(st Styles) string {
	p, w := s.p, s.width
	field := func(label, value string) string {
		return clip("  "+st.Label.Render(fit(label, 9, ""))+" "+value, w, st.Ellipsis)
	}
	barW := max(10, min(60, w-4))
	var lines []string
	lines = append(lines, st.Heading.Render(clip("Flashing "+s.plan.image.Name+" to "+s.plan.target.Path, w, st.Ellipsis)), "")
	lines = append(lines, field("Phase", phaseText(p.Phase)))
	// The bar and its percentage are of the image on the disk, or of the
	// read-back. A gzip or bzip2 stream does not say its decoded size, so
	// the only percentage then is of the source read, on its own line.
	sized := p.ImageSize > 0
	if sized {
		lines = append(lines, "  "+st.bar(barW, p.Fraction(), true))
	}
	done := units.Bytes(p.Done())
	if sized {
		done += " of " + units.Bytes(p.ImageSize)
	} else {
		done += " (image size known at the end)"
	}
	lines = append(lines, field("On disk", done))
	lines = append(lines, field("", fmt.Sprintf("%s written, %s zeroed without writing", units.Bytes(p.Written), units.Bytes(p.Zeroed))))
	if p.Phase == flash.PhaseVerifying {
		lines = append(lines, field("Verified", units.Bytes(p.Verified)))
	}
	rate := rateText(p.Rate)
	if p.ETA > 0 {
		rate += "    ETA " + clockText(p.ETA)
	}
	lines = append(lines, field("Rate", rate))
	if s.plan.network() || !sized {
		label, what := "Read", "of the compressed file read"
		if s.plan.network() {
			label, what = "Download", "downloaded"
		}
		if p.SourceTotal > 0 {
			f := min(1, float64(p.SourceBytes)/float64(p.SourceTotal))
			lines = append(lines, field(label, units.Bytes(p.SourceBytes)+" of "+units.Bytes(p.SourceTotal)))
			lines = append(lines, field("", fmt.Sprintf("%.0f%% %s", f*100, what)))
			if !sized {
				lines = append(lines, "  "+st.bar(barW, f, false))
			}
		} else {
			lines = append(lines, field(label, units.Bytes(p.SourceBytes)+" (size unknown)"))
		}
	}
	lines = append(lines, "")
	leaves := s.plan.target.Path + " is left with no partition table: it will not boot until it is flashed again."
	if p.Phase == flash.PhaseOpening {
		leaves = "Nothing has been written to " + s.plan.target.Path + " yet."
	}
	switch {
	case s.cancelling:
		lines = append(lines, st.Warn.Render(wrap("Cancelling: waiting for the writes in flight to stop...", w)))
	case s.asking == askCancel:
		lines = append(lines, st.Danger.Render(wrap("Cancel the flash? "+leaves+" [y/N]", w)))
	case s.asking == askQuit:
		lines = append(lines, st.Danger.Render(wrap("Cancel the flash and quit? "+leaves+" [y/N]", w)))
	default:
		lines = append(lines, st.Dim.Render(wrap("The first MiB is written last: until the end, "+s.plan.target.Path+" has no partition table and cannot boot a half-written image.", w)))
	}
	return strings.Join(lines, "\n")
}
