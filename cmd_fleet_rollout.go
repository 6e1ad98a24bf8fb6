package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"bty/wire"
)

// rollout: bty fleet rollout start|status|ls|pause|resume|cancel. A rollout
// is a thing of its own (an id, a state, machines that wait and flash), not
// a flag of set: set changes bindings now, a rollout changes them one slot
// at a time, and is followed, paused and cancelled for hours after.
func (c *fleetCLI) rollout(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("bty fleet rollout start|status|ls|pause|resume|cancel (see bty fleet --help)")
	}
	switch args[0] {
	case "start":
		return c.rolloutStart(ctx, args[1:])
	case "status":
		return c.rolloutStatus(ctx, args[1:])
	case "ls":
		return c.rolloutLs(ctx, args[1:])
	case "pause", "resume", "cancel":
		return c.rolloutAct(ctx, args[0], args[1:])
	}
	return usagef("bty fleet rollout: unknown command %q: start, status, ls, pause, resume or cancel", args[0])
}

func (c *fleetCLI) rolloutStart(ctx context.Context, args []string) error {
	var label, image string
	var req wire.RolloutStart
	var wait bool
	var timeout time.Duration
	fs := c.flags("rollout start", "rollout start --label L --image NAME [--max-parallel N] [--max-failures M] [--wait]")
	fs.StringVar(&label, "label", "", "the machines: those with this label")
	fs.StringVar(&image, "image", "", "the image: a name of the server's images, or a ref")
	fs.IntVar(&req.MaxParallel, "max-parallel", 1, "at most this many machines flash at a time")
	fs.IntVar(&req.MaxFailures, "max-failures", 0, "stop when more machines than this have failed for good")
	fs.BoolVar(&wait, "wait", false, "follow the rollout until it ends or stops (see status --wait)")
	fs.DurationVar(&timeout, "timeout", 24*time.Hour, "with --wait: give up after this long (exit 124)")
	if pos, err := c.parse(fs, args); err != nil || len(pos) > 0 {
		return firstErr(err, pos)
	}
	if label == "" || image == "" {
		return usagef("bty fleet rollout start needs --label L and --image NAME")
	}
	ref, err := c.findImage(ctx, image)
	if err != nil {
		return err
	}
	req.Label, req.Image = label, ref
	if err := req.Validate(); err != nil {
		return usagef("%v", err)
	}
	var ro wire.Rollout
	if err := c.call(ctx, "POST", "/rollouts", req, &ro); err != nil {
		return err
	}
	c.printRollout(ro)
	if !wait {
		return nil
	}
	return c.awaitRollout(ctx, ro.ID, timeout)
}

// rolloutArg finds the rollout an ID or --label names: the label's
// rollout that has not ended.
func (c *fleetCLI) rolloutArg(ctx context.Context, pos []string, label string) (int64, error) {
	switch {
	case len(pos) == 1 && label == "":
		id, err := strconv.ParseInt(pos[0], 10, 64)
		if err != nil {
			return 0, usagef("rollout %q: give its number (bty fleet rollout ls)", pos[0])
		}
		return id, nil
	case len(pos) == 0 && label != "":
		var ros []wire.Rollout
		if err := c.call(ctx, "GET", "/rollouts?active=1&limit=500", nil, &ros); err != nil {
			return 0, err
		}
		for _, ro := range ros {
			if ro.Label == label && ro.State != wire.RolloutCancelled {
				return ro.ID, nil
			}
		}
		return 0, usagef("label %s has no rollout under way (bty fleet rollout ls)", label)
	}
	return 0, usagef("name one rollout: its number, or --label L")
}

func (c *fleetCLI) rolloutStatus(ctx context.Context, args []string) error {
	var label string
	var asJSON, wait bool
	var timeout time.Duration
	fs := c.flags("rollout status", "rollout status ID|--label L [--json] [--wait [--timeout D]]")
	fs.StringVar(&label, "label", "", "the label's rollout under way")
	fs.BoolVar(&asJSON, "json", false, "print the rollout as JSON")
	fs.BoolVar(&wait, "wait", false, "follow it until it ends or stops: exit 0 when done, 1 stopped or cancelled, 124 timeout")
	fs.DurationVar(&timeout, "timeout", 24*time.Hour, "with --wait: give up after this long")
	pos, err := c.parse(fs, args)
	if err != nil {
		return firstErr(err, nil)
	}
	id, err := c.rolloutArg(ctx, pos, label)
	if err != nil {
		return err
	}
	if wait {
		return c.awaitRollout(ctx, id, timeout)
	}
	var ro wire.Rollout
	if err := c.call(ctx, "GET", fmt.Sprintf("/rollouts/%d", id), nil, &ro); err != nil {
		return err
	}
	if asJSON {
		return c.printJSON(ro)
	}
	c.printRollout(ro)
	tw := tabwriter.NewWriter(c.e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MAC\tSTATE\tSINCE\tREASON")
	for _, m := range ro.Machines {
		since := "-"
		if t := m.EndedAt; t != nil {
			since = t.Local().Format(time.DateTime)
		} else if t := m.AdmittedAt; t != nil {
			since = t.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.MAC, m.State, since, m.Reason)
	}
	return tw.Flush()
}

// counts writes a rollout's machines per state: "5 flashing, 8 done, 7 waiting".
func counts(ro wire.Rollout) string {
	var parts []string
	total := 0
	for _, st := range []string{wire.MemberFlashing, wire.MemberDone, wire.MemberFailed, wire.MemberWaiting, wire.MemberSkipped, wire.MemberCancelled} {
		if n := ro.Counts[st]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, st))
			total += n
		}
	}
	return fmt.Sprintf("%d machines: %s", total, strings.Join(parts, ", "))
}

func (c *fleetCLI) printRollout(ro wire.Rollout) {
	fmt.Fprintf(c.e.stdout, "rollout %d: %s to label %s, %s; at most %d at a time, stop after %d failures\n  %s\n",
		ro.ID, ro.ImageName, ro.Label, ro.State, ro.MaxParallel, ro.MaxFailures, counts(ro))
	if ro.Reason != "" {
		fmt.Fprintf(c.e.stdout, "  %s\n", ro.Reason)
	}
}

// rolloutError is a rollout that did not end done.
type rolloutError struct{ msg string }

func (e *rolloutError) Error() string { return e.msg }

// awaitRollout prints a rollout's counts as they change until it ends, or
// stops: nil when done, a rolloutError when stopped or cancelled.
func (c *fleetCLI) awaitRollout(ctx context.Context, id int64, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	for {
		var ro wire.Rollout
		err := c.call(ctx, "GET", fmt.Sprintf("/rollouts/%d", id), nil, &ro)
		if ctx.Err() != nil {
			return &reflashError{mac: fmt.Sprintf("rollout %d", id), msg: "not ended before the timeout", timeout: true}
		}
		if err != nil {
			var ae *apiError
			if errors.As(err, &ae) && ae.code/100 == 4 {
				return err
			}
			fmt.Fprintf(c.e.stderr, "bty: %v (trying again)\n", err)
		} else {
			line := fmt.Sprintf("rollout %d %s: %s", ro.ID, ro.State, counts(ro))
			if line != last {
				fmt.Fprintf(c.e.stderr, "bty: %s\n", line)
				last = line
			}
			switch {
			case ro.State == wire.RolloutDone:
				return nil
			case ro.State == wire.RolloutStopped, ro.State == wire.RolloutCancelled && ro.EndedAt != nil:
				return &rolloutError{fmt.Sprintf("rollout %d %s: %s", ro.ID, ro.State, ro.Reason)}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
}

func (c *fleetCLI) rolloutLs(ctx context.Context, args []string) error {
	var all, asJSON bool
	fs := c.flags("rollout ls", "rollout ls [--all] [--json]")
	fs.BoolVar(&all, "all", false, "also the rollouts that ended (the latest 50)")
	fs.BoolVar(&asJSON, "json", false, "print a JSON array")
	if pos, err := c.parse(fs, args); err != nil || len(pos) > 0 {
		return firstErr(err, pos)
	}
	path := "/rollouts?active=1&limit=500"
	if all {
		path = "/rollouts?limit=50"
	}
	var ros []wire.Rollout
	if err := c.call(ctx, "GET", path, nil, &ros); err != nil {
		return err
	}
	if asJSON {
		return c.printJSON(ros)
	}
	tw := tabwriter.NewWriter(c.e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tLABEL\tIMAGE\tSTATE\tPARALLEL\tMACHINES\tSTARTED")
	for _, ro := range ros {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", ro.ID, ro.Label, ro.ImageName, ro.State, ro.MaxParallel,
			counts(ro), ro.CreatedAt.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

func (c *fleetCLI) rolloutAct(ctx context.Context, action string, args []string) error {
	var label string
	var parallel, failures int
	usage := "rollout " + action + " ID|--label L"
	if action == "resume" {
		usage += " [--max-parallel N] [--max-failures M]"
	}
	fs := c.flags("rollout "+action, usage)
	fs.StringVar(&label, "label", "", "the label's rollout under way")
	if action == "resume" {
		fs.IntVar(&parallel, "max-parallel", 0, "a new limit of machines flashing at a time")
		fs.IntVar(&failures, "max-failures", -1, "a new limit of failures (default: a stopped rollout accepts the failures so far and stops at the next)")
	}
	pos, err := c.parse(fs, args)
	if err != nil {
		return firstErr(err, nil)
	}
	id, err := c.rolloutArg(ctx, pos, label)
	if err != nil {
		return err
	}
	var change *wire.RolloutChange
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "max-parallel" || f.Name == "max-failures" {
			if change == nil {
				change = &wire.RolloutChange{}
			}
			if f.Name == "max-parallel" {
				change.MaxParallel = &parallel
			} else {
				change.MaxFailures = &failures
			}
		}
	})
	var body any
	if change != nil {
		body = change
	}
	var ro wire.Rollout
	if err := c.call(ctx, "POST", fmt.Sprintf("/rollouts/%d/%s", id, action), body, &ro); err != nil {
		return err
	}
	c.printRollout(ro)
	return nil
}
