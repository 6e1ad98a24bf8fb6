package ui

import (
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"bty/flash"
	"bty/units"
)

// RebootMsg: the user asked to reboot; the wizard ends and the caller reboots.
type RebootMsg struct{}

// AnotherDiskMsg: the user wants the same image on another disk.
type AnotherDiskMsg struct{}

// doneScreen reports a finished flash: time, throughput, digest and read-back.
// Reboot is offered only where the caller allows it (the live environment),
// and asks first; the default is no.
type doneScreen struct {
	plan      plan
	res       flash.Result
	canReboot bool
	asking    bool // "Reboot now? [y/N]"
	width     int
	height    int
}

func (s *doneScreen) SetSize(w, h int) { s.width, s.height = w, h }

func (s doneScreen) keys(k *KeyMap) {
	if s.asking {
		k.only(&k.Yes, &k.No, &k.Kill)
		k.Yes.SetHelp("y", "reboot now")
		k.No.SetHelp("n/esc", "do not reboot")
		return
	}
	k.only(&k.Another, &k.Back, &k.Quit, &k.Kill)
	k.Reboot.SetEnabled(s.canReboot)
	k.Back.SetHelp("esc", "another image")
}

func (s doneScreen) help(k KeyMap) []key.Binding {
	return []key.Binding{k.Yes, k.No, k.Reboot, k.Another, k.Back, k.Quit}
}

func (s *doneScreen) Update(msg tea.Msg, k KeyMap) tea.Cmd {
	km, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil
	}
	switch {
	case s.asking && key.Matches(km, k.Yes):
		s.asking = false
		return emit(RebootMsg{})
	case s.asking && key.Matches(km, k.No):
		s.asking = false
	case key.Matches(km, k.Reboot):
		s.asking = true
	case key.Matches(km, k.Another):
		return emit(AnotherDiskMsg{})
	case key.Matches(km, k.Back):
		return emit(BackMsg{})
	}
	return nil
}

func (s doneScreen) View(st Styles) string {
	r, w := s.res, s.width
	field := func(label, value string) string {
		return clip("  "+st.Label.Render(fit(label, 11, ""))+" "+value, w, st.Ellipsis)
	}
	var lines []string
	for _, l := range strings.Split(wrap("Done: "+s.plan.image.Name+" is on "+s.plan.target.Path, w), "\n") {
		lines = append(lines, st.Good.Render(l))
	}
	lines = append(lines, "")
	lines = append(lines, field("Time", durationText(r.Duration)))
	tp := "-"
	if secs := r.Duration.Seconds(); secs > 0 && r.ImageSize > 0 {
		tp = rateText(float64(r.ImageSize) / secs)
	}
	lines = append(lines, field("Throughput", tp+"  ("+units.Bytes(r.ImageSize)+" image)"))
	lines = append(lines, field("On disk", units.Bytes(r.Written)+" written, "+units.Bytes(r.Zeroed)+" zeroed without writing"))
	lines = append(lines, field("Format", string(r.Format)))
	sum := r.SHA256
	if w < 80 {
		sum = shortDigest(sum, st.Ellipsis)
	}
	lines = append(lines, field("sha256", sum))
	if s.plan.sha256 != "" {
		lines = append(lines, field("", st.Good.Render(s.plan.sha256From.Matches())))
	} else {
		lines = append(lines, field("", st.Warn.Render("no expected digest: computed, not checked")))
	}
	if r.Verified {
		lines = append(lines, field("Read back", st.Good.Render("verified: the disk holds the image")))
	} else {
		lines = append(lines, field("Read back", "not verified (bty --verify reads the disk back)"))
	}
	if r.GPTRelocated {
		lines = append(lines, field("GPT", "backup header moved to the end of the disk"))
	}
	if s.asking {
		// Above the warnings, which may run past the bottom.
		lines = append(lines, "", st.Danger.Render(clip("  Reboot this machine now? [y/N]", w, st.Ellipsis)), "")
	}
	for _, warn := range r.Warnings {
		for i, l := range strings.Split(wrap(warn, max(20, w-15)), "\n") {
			label := ""
			if i == 0 {
				label = "Warning"
			}
			lines = append(lines, field(label, st.Warn.Render(l)))
		}
	}
	return strings.Join(lines, "\n")
}
