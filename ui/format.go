package ui

import (
	"fmt"
	"strings"
	"time"

	"bty/units"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"bty/format"
)

// rateText is a rate in bytes per second.
func rateText(r float64) string {
	if r <= 0 {
		return "-"
	}
	return units.Bytes(int64(r)) + "/s"
}

// plural is "1 image", "2 images".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// durationText is a duration to read after the fact: "0.42 s" when short,
// else as clockText.
func durationText(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return clockText(d)
}

// clockText is a duration as m:ss or h:mm:ss.
func clockText(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%d:%02d", m, s)
}

// fit truncates s to width cells with the ellipsis, and pads it with spaces to
// exactly width cells.
func fit(s string, width int, ellipsis string) string {
	if width <= 0 {
		return ""
	}
	if lipgloss.Width(s) > width {
		s = ansi.Truncate(s, width, ellipsis)
	}
	if w := lipgloss.Width(s); w < width {
		s += strings.Repeat(" ", width-w)
	}
	return s
}

// clip truncates s to width cells with the ellipsis, without padding.
func clip(s string, width int, ellipsis string) string {
	if width <= 0 {
		return ""
	}
	if lipgloss.Width(s) > width {
		return ansi.Truncate(s, width, ellipsis)
	}
	return s
}

// shortDigest shows the ends of a hex digest: "3f2a9c01...c9d1".
func shortDigest(h, ellipsis string) string {
	if len(h) <= 16 {
		return h
	}
	return h[:8] + ellipsis + h[len(h)-4:]
}

// wrap breaks text into lines of at most width cells.
func wrap(text string, width int) string {
	if width <= 0 {
		return text
	}
	return lipgloss.Wrap(text, width, " /,")
}

// formatName is a catalog format value as people say it: "img.xz" is xz.
func formatName(f string) string {
	if n := format.Parse(f); n != "" {
		return string(n)
	}
	return f
}

// fitTail is fit for paths: it keeps the end, which names the thing.
func fitTail(s string, width int, ellipsis string) string {
	if r := []rune(s); len(r) > width && width > len(ellipsis) {
		s = ellipsis + string(r[len(r)-(width-lipgloss.Width(ellipsis)):])
	}
	return fit(s, width, ellipsis)
}
