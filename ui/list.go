package ui

import "fmt"

// listCursor is the cursor of a scrolling list: the row it is on and the first
// row on screen, both indices into the rows shown. A cursor of -1 is on no row.
type listCursor struct {
	cursor int
	offset int
}

// follow scrolls a window of h of the n rows so that it shows the cursor.
func (c *listCursor) follow(n, h int) {
	if c.cursor < c.offset {
		c.offset = c.cursor
	}
	if c.cursor >= c.offset+h {
		c.offset = c.cursor - h + 1
	}
	c.offset = max(0, min(c.offset, n-h))
}

// more says what a window of h of the n rows hides: "↑ 3 more" above it and
// "↓ 5 more" below it, "" where it hides nothing.
func (c listCursor) more(n, h int, st Styles) (above, below string) {
	if c.offset > 0 {
		above = st.Dim.Render(fmt.Sprintf("  %s %d more", st.Above, c.offset))
	}
	if rest := n - c.offset - h; rest > 0 {
		below = st.Dim.Render(fmt.Sprintf("  %s %d more", st.Below, rest))
	}
	return above, below
}
