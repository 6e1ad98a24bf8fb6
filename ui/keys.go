package ui

import "charm.land/bubbles/v2/key"

// KeyMap is every key the wizard knows. Update enables only the bindings that
// work on the current screen in its current state, so a disabled binding never
// matches and the help line never shows a dead key.
type KeyMap struct {
	Up, Down key.Binding
	Choose   key.Binding // enter: choose the row, apply the filter, use the typed source
	Back     key.Binding // esc
	Quit     key.Binding // q (asks during a flash)
	Kill     key.Binding // ctrl+c: quit, or ask to cancel during a flash

	Filter        key.Binding // images: /
	ClearFilter   key.Binding // images, while filtering: esc
	Refresh       key.Binding // images and disks: r
	ToggleRefused key.Binding // disks: show or hide refused disks
	StopLoading   key.Binding // images, while catalogs load: esc

	Yes     key.Binding // confirm a removable disk or file; answer a question
	No      key.Binding // decline; enter too, as the default is no
	Confirm key.Binding // enter after typing the disk's name

	Retry   key.Binding // error screen
	Reboot  key.Binding // done screen, when the caller allows it
	Another key.Binding // done screen: flash another disk

	// Help shows every key of the screen (?), and closes that list again
	// (? or esc). It works wherever q does: where a text field takes
	// printable keys, ? is typed.
	Help key.Binding
}

// DefaultKeyMap is the wizard's keys; plain spells the arrows out.
func DefaultKeyMap(plain bool) KeyMap {
	move := "↑/↓"
	if plain {
		move = "up/down"
	}
	return KeyMap{
		// The help line shows Up for both: "↑/↓ move".
		Up:            key.NewBinding(key.WithKeys("up", "k"), key.WithHelp(move, "move")),
		Down:          key.NewBinding(key.WithKeys("down", "j"), key.WithHelp(move, "move")),
		Choose:        key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "choose")),
		Back:          key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back")),
		Quit:          key.NewBinding(key.WithKeys("q"), key.WithHelp("q", "quit")),
		Kill:          key.NewBinding(key.WithKeys("ctrl+c"), key.WithHelp("ctrl+c", "quit")),
		Filter:        key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter")),
		ClearFilter:   key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "clear filter")),
		Refresh:       key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "refresh")),
		ToggleRefused: key.NewBinding(key.WithKeys("a"), key.WithHelp("a", "hide refused")),
		Yes:           key.NewBinding(key.WithKeys("y", "Y"), key.WithHelp("y", "yes")),
		No:            key.NewBinding(key.WithKeys("n", "N", "esc", "enter"), key.WithHelp("n/esc", "no")),
		Confirm:       key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "confirm")),
		Retry:         key.NewBinding(key.WithKeys("r", "enter"), key.WithHelp("r", "retry")),
		Reboot:        key.NewBinding(key.WithKeys("b"), key.WithHelp("b", "reboot")),
		Another:       key.NewBinding(key.WithKeys("a"), key.WithHelp("a", "flash another disk")),
		StopLoading:   key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "stop loading")),
		Help:          key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "all keys")),
	}
}

// all lists every binding, to disable them before a screen enables its own.
func (k *KeyMap) all() []*key.Binding {
	return []*key.Binding{
		&k.Up, &k.Down, &k.Choose, &k.Back, &k.Quit, &k.Kill,
		&k.Filter, &k.ClearFilter, &k.Refresh, &k.ToggleRefused, &k.StopLoading,
		&k.Yes, &k.No, &k.Confirm, &k.Retry, &k.Reboot, &k.Another, &k.Help,
	}
}

// only disables every binding but the given ones.
func (k *KeyMap) only(on ...*key.Binding) {
	for _, b := range k.all() {
		b.SetEnabled(false)
	}
	for _, b := range on {
		b.SetEnabled(true)
	}
}
