package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"bty/catalog"
	"bty/demo"
	"bty/disks"
	"bty/ui"
)

// cmdDemo: bty demo [--slow] [--dir DIR]. The whole wizard without root or a
// spare disk: the demo images (every format, generated in memory) are the image
// root, and a scratch file beside them is the only target.
//
// Without --dir the files go to a new temporary folder. On exit the images are
// removed; a scratch file whose last flash succeeded is kept, and its path
// printed, so it can be inspected (the folder is removed otherwise: a flash
// that failed or was cancelled leaves nothing worth keeping). With --dir
// everything is kept.
func cmdDemo(ctx context.Context, e env, args []string) error {
	var dir string
	var slow bool
	fs := newFlagSet(e, "demo", "bty demo [--slow] [--dir DIR]")
	fs.StringVar(&dir, "dir", "", "put the demo images and the scratch file in `DIR` and keep them (default: a temporary folder)")
	fs.BoolVar(&slow, "slow", false, "stretch each flash over about 5 seconds, to watch the progress screen")
	if ok, err := parseFlags(fs, args); !ok {
		return err
	}
	out, err := wizardTerminal(e)
	if err != nil {
		return err
	}
	keep := dir != ""
	if !keep {
		if dir, err = os.MkdirTemp("", "bty-demo-"); err != nil {
			return err
		}
	}
	images := filepath.Join(dir, "images")
	scratch := filepath.Join(dir, "scratch.img")
	if _, err := demo.Write(images); err != nil {
		return err
	}
	res := ui.CatalogResolver(newResolver(e, nil, false))
	if slow {
		res = slowResolver{res}
	}
	o, err := ui.Run(ctx, ui.Options{
		Title:     "demo",
		ImageRoot: images,
		Targets: func(disks.Check) ([]ui.Target, error) {
			return []ui.Target{ui.FileTarget(scratch, "scratch file (demo target)")}, nil
		},
		Plain:    ui.PlainTerminal(e.getenv, ttyName(out)),
		Resolver: res,
	})
	switch {
	case keep:
		reportOutcome(e.stderr, "bty demo", o)
	case slices.Contains(o.Flashed, scratch):
		os.RemoveAll(images)
		fmt.Fprintf(e.stderr, "bty demo: the flashed scratch file is %s (remove it with: rm -r %s)\n", scratch, dir)
	default:
		os.RemoveAll(dir)
		if len(o.Unfinished) > 0 {
			fmt.Fprintln(e.stderr, "bty demo: the last flash did not finish; the scratch file was removed")
		}
	}
	if err != nil {
		return err
	}
	return o.Err
}

// slowResolver opens the images as demo.Slow sources.
type slowResolver struct{ ui.Resolver }

func (r slowResolver) Open(ctx context.Context, en catalog.Entry) (catalog.Resolved, error) {
	img, err := r.Resolver.Open(ctx, en)
	if err == nil && en.Size > 0 {
		img.Source = demo.Slow(img.Source, en.Size, 5*time.Second)
	}
	return img, err
}
