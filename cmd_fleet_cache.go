package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"bty/category"
	"bty/wire"
)

// cacheCmd: bty fleet cache ls | warm NAME... [--wait] | rm NAME: the
// server's image fan-out cache (bty serve --cache DIR).
func (c *fleetCLI) cacheCmd(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("bty fleet cache ls | warm NAME... [--wait] | rm NAME")
	}
	switch args[0] {
	case "ls":
		return c.cacheLs(ctx, args[1:])
	case "warm":
		return c.cacheWarm(ctx, args[1:])
	case "rm":
		pos, err := c.parse(c.flags("cache rm", "cache rm NAME|SHA256"), args[1:])
		if err != nil {
			return firstErr(err, nil)
		}
		if len(pos) != 1 {
			return usagef("bty fleet cache rm takes one image name (or its ref or sha256)")
		}
		if err := c.call(ctx, "DELETE", "/admin/cache/"+url.PathEscape(pos[0]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(c.e.stderr, "bty: %s removed from the cache\n", pos[0])
		return nil
	}
	return usagef("bty fleet cache: unknown command %q: ls, warm or rm", args[0])
}

func (c *fleetCLI) cacheLs(ctx context.Context, args []string) error {
	var asJSON bool
	fs := c.flags("cache ls", "cache ls [--json]")
	fs.BoolVar(&asJSON, "json", false, "print the server's answer as JSON")
	if pos, err := c.parse(fs, args); err != nil || len(pos) > 0 {
		return firstErr(err, pos)
	}
	var cache wire.Cache
	if err := c.call(ctx, "GET", "/admin/cache", nil, &cache); err != nil {
		return err
	}
	if asJSON {
		return c.printJSON(cache)
	}
	limit := "no cap"
	if cache.MaxBytes > 0 {
		limit = "of " + gib(cache.MaxBytes)
	}
	fmt.Fprintf(c.e.stdout, "%s: %s used, %s\n", cache.Dir, gib(cache.UsedBytes), limit)
	tw := tabwriter.NewWriter(c.e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tSHA256\tSTATE\tSIZE\tREADERS\tLAST USED")
	for _, e := range cache.Entries {
		state := e.State
		switch {
		case e.State == "filling" && e.SizeBytes > 0:
			state = fmt.Sprintf("filling %d%%", e.Filled*100/e.SizeBytes)
		case e.State == "failed":
			state = "failed: " + e.Error
		}
		size := "-"
		if e.SizeBytes >= 0 {
			size = gib(e.SizeBytes)
		}
		last := e.LastUsed
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", orDash(&e.Name), short(e.SHA256), state, size, e.Readers, ago(&last))
	}
	return tw.Flush()
}

func gib(n int64) string { return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30)) }

func short(sum string) string {
	if len(sum) < 12 {
		return "-"
	}
	return sum[:12]
}

func (c *fleetCLI) cacheWarm(ctx context.Context, args []string) error {
	var wait bool
	var timeout time.Duration
	fs := c.flags("cache warm", "cache warm NAME... [--wait] [--timeout D]")
	fs.BoolVar(&wait, "wait", false, "wait until each image is cached (exit 4 integrity, 5 source when a fill fails)")
	fs.DurationVar(&timeout, "timeout", 2*time.Hour, "with --wait: give up after this long (exit 124)")
	pos, err := c.parse(fs, args)
	if err != nil {
		return firstErr(err, nil)
	}
	if len(pos) == 0 {
		return usagef("bty fleet cache warm takes one or more image names")
	}
	var started []wire.CacheEntry
	for _, name := range pos {
		var e wire.CacheEntry
		if err := c.call(ctx, "POST", "/admin/cache/warm", wire.CacheWarm{Image: name}, &e); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Fprintf(c.e.stderr, "bty: %s: %s\n", name, e.State)
		started = append(started, e)
	}
	if !wait {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, want := range started {
		if err := c.awaitFill(ctx, want); err != nil {
			return err
		}
	}
	return nil
}

// awaitFill follows the cache until the image of want is complete, or its
// fill failed.
func (c *fleetCLI) awaitFill(ctx context.Context, want wire.CacheEntry) error {
	for {
		var cache wire.Cache
		err := c.call(ctx, "GET", "/admin/cache", nil, &cache)
		if ctx.Err() != nil {
			return &reflashError{mac: want.Name, msg: "not cached before the timeout (bty fleet cache ls)", timeout: true}
		}
		if err != nil {
			fmt.Fprintf(c.e.stderr, "bty: %v (trying again)\n", err)
		}
		for _, e := range cache.Entries {
			same := (want.SHA256 != "" && e.SHA256 == want.SHA256) || (want.SHA256 == "" && want.Ref != "" && e.Ref == want.Ref)
			switch {
			case !same:
			case e.State == "complete":
				fmt.Fprintf(c.e.stderr, "bty: %s: cached (sha256 %s, %s)\n", want.Name, short(e.SHA256), gib(e.SizeBytes))
				return nil
			case e.State == "failed":
				cat := category.ErrSource
				if strings.Contains(e.Error, category.ErrIntegrity.Error()) {
					cat = category.ErrIntegrity
				}
				return fmt.Errorf("%s: the fill failed: %s (%w)", want.Name, e.Error, cat)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
}
