package ui

// listCursor is the cursor of a scrolling list: the row it is on and the first
// row on screen, both indices into the rows shown.
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
