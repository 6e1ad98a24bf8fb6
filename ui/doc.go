// Package ui is the wizard: one bubbletea program that takes a field tech from
// an image to a flashed disk and never lets them write the wrong one. It is the
// only package that imports the charm libraries; it uses catalog, disks and
// flash, and main wires it (bty, bty --image/--disk without --yes, bty demo).
//
// The flow, one screen per file:
//
//	source    screen_source.go    image root only, the default catalog, or a typed one
//	             (skipped with --catalog, or when the image root has images)
//	images    screen_images.go    the table of images; / filters, r refreshes; the image
//	                              root's rows show while catalogs load (esc stops)
//	disks     screen_disks.go     targets with verdicts; refused ones dimmed or hidden;
//	                              the cursor never starts on a disk whose name is typed
//	confirm   screen_confirm.go   the plan; type the disk's name, or y for a removable one;
//	                              no answer taken while any of it is off screen
//	progress  screen_progress.go  the running flash; ctrl+c and q ask first
//	done      screen_done.go      time, throughput, digest, read-back; another disk;
//	                              reboot (asks first) where the caller allows it
//	error     screen_error.go     the message, what the target holds; retry (a flash
//	                              asks again) and back
//
// On every screen where q is a key, ? replaces the screen with the list of
// its keys; the help line keeps q in sight when keys must be left out.
//
// Model (ui.go) owns the screen enum, the error state and the plan (image and
// target). Each screen is a small model with Update, View, SetSize, keys (which
// bindings of the one KeyMap work in its state) and help (their order on the
// help line); the messages it emits are declared at the top of its file. The
// root reaches the screen shown through the page interface, so going over the
// screens is one line (Model.page); a new screen is a file that implements
// page, a value in the screen enum, a field in Model and a case in Model.page,
// and the transitions to it in Model.update and Model.back.
//
// Work runs in commands (commands.go): image lists, disk lists and resolves
// return one message each, tagged with a generation so that a stale answer is
// dropped; a flash runs in a goroutine that reports through a channel drained
// by a command re-issued after each message, and is cancelled through its
// context. The rest: options.go (Options, Backend, Run and its Outcome),
// plan.go (what will be flashed where, and what a failure leaves),
// messages.go (the results of the work), errors.go (errors in plain words),
// view.go (the top line, the body and the help line).
//
// Styles has two looks: DefaultStyles (colour, Unicode) and PlainStyles (ASCII
// without colour) for NO_COLOR, the Linux console and serial lines
// (PlainTerminal decides). Both must read well at 80x24.
package ui
