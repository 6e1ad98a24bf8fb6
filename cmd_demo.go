package main

import (
	"context"
	"fmt"
	"io"
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

// slowResolver opens the images as slowSources.
type slowResolver struct{ ui.Resolver }

func (r slowResolver) Open(ctx context.Context, en catalog.Entry) (catalog.Resolved, error) {
	img, err := r.Resolver.Open(ctx, en)
	if err == nil && en.Size > 0 {
		img.Source = newSlowSource(img.Source, en.Size, 5*time.Second)
	}
	return img, err
}

// slowSource delivers a source's bytes at rate bytes per second, in small
// reads, so that a demo flash lasts long enough to watch. Opens at an offset
// (format probes reading an index or a table) are not slowed.
type slowSource struct {
	catalog.Source
	rate  float64
	chunk int
}

func newSlowSource(src catalog.Source, size int64, d time.Duration) *slowSource {
	return &slowSource{Source: src, rate: float64(size) / d.Seconds(), chunk: int(max(16, size/200))}
}

func (s *slowSource) Open(ctx context.Context, off int64) (io.ReadCloser, int64, error) {
	rc, n, err := s.Source.Open(ctx, off)
	if err != nil || off != 0 {
		return rc, n, err
	}
	return &slowReader{ReadCloser: rc, ctx: ctx, s: s, start: time.Now()}, n, nil
}

type slowReader struct {
	io.ReadCloser
	ctx   context.Context
	s     *slowSource
	start time.Time
	n     int64
}

func (r *slowReader) Read(p []byte) (int, error) {
	if len(p) > r.s.chunk {
		p = p[:r.s.chunk]
	}
	n, err := r.ReadCloser.Read(p)
	r.n += int64(n)
	if wait := time.Duration(float64(r.n)/r.s.rate*float64(time.Second)) - time.Since(r.start); wait > 0 {
		select {
		case <-time.After(wait):
		case <-r.ctx.Done():
			return n, r.ctx.Err()
		}
	}
	return n, err
}
