package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"bty/blockindex"
	"bty/catalog"
	"bty/flash"
	"bty/media"
	"bty/server"
	"bty/server/store"
)

const serveUsage = `bty serve --images DIR [--catalog SRC]... [--listen ADDR] [--blocks DIR|none]
       bty serve --images DIR --state DIR [--boot DIR] [--url URL]
                 [--catalog SRC]... [--listen ADDR]
                 [--pxe [--interface IF] [--pxe-known-only] [--ipxe-dir DIR]]
                 [--dhcp-observe]`

// blockDir returns the block store's directory: --blocks, else STATE/blocks,
// else the user's cache; "" for --blocks none.
func blockDir(e env, flag, state string) (string, error) {
	switch {
	case flag == "none":
		return "", nil
	case flag != "":
		return flag, nil
	case state != "":
		return filepath.Join(state, "blocks"), nil
	}
	cache := e.getenv("XDG_CACHE_HOME")
	if cache == "" {
		home := e.getenv("HOME")
		if home == "" {
			return "", usagef("--blocks is not set and neither is $HOME: name the block store's directory with --blocks DIR, or say --blocks none")
		}
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "bty", "blocks"), nil
}

// decodeImage returns the ServerOptions.Decode of bty serve: flash writes the
// decoded image to a temporary file in dir (the block store's, so on the same
// file system; zeros become holes and take no space), which is unlinked once
// opened, so nothing is left behind whatever happens next.
func decodeImage(dir string) func(ctx context.Context, path string) (io.ReadCloser, error) {
	return func(ctx context.Context, path string) (io.ReadCloser, error) {
		tmp, err := os.CreateTemp(dir, ".decode-*")
		if err != nil {
			return nil, err
		}
		tmp.Close()
		defer os.Remove(tmp.Name())
		if _, err := flash.Flash(ctx, catalog.NewFileSource(path), tmp.Name(), flash.Options{}); err != nil {
			return nil, fmt.Errorf("decode %s: %w", path, err)
		}
		return os.Open(tmp.Name())
	}
}

// cmdServe: the HTTP catalog, and with --state the fleet server.
func cmdServe(ctx context.Context, e env, args []string) error {
	var dir, listen, state, boot, baseURL, quarantine, blocks string
	var catalogs multiFlag
	var plainHTTP bool
	var retries, keep int
	var maxAge, refresh time.Duration
	var px pxeFlags
	fs := newFlagSet(e, "serve", serveUsage+"\n\nServes the images of DIR, and the entries of the catalogs, as an HTTP catalog\n(GET /catalog.toml) that bty --catalog reads; with --state, also the fleet\nserver (docs/fleet.md).")
	fs.StringVar(&dir, "images", "", "directory `DIR` of images to serve (required)")
	fs.Var(&catalogs, "catalog", "catalog `SRC` whose entries are listed too (TOML file, http(s) URL, oras:// ref); repeatable")
	fs.StringVar(&listen, "listen", ":8080", "address `ADDR` to listen on")
	fs.StringVar(&blocks, "blocks", "", "block store `DIR` of delta reflash: each image's block index and blocks (default STATE/blocks with --state, else $XDG_CACHE_HOME/bty/blocks); none: no block indexes")
	fs.BoolVar(&plainHTTP, "plain-http", false, "talk plain HTTP to oras:// registries that are not on loopback")
	fs.StringVar(&state, "state", "", "fleet server: directory `DIR` of its state (database, admin token)")
	fs.StringVar(&boot, "boot", "", "fleet server: directory `DIR` of the live environment (bty media netboot --out DIR), served under /boot/")
	fs.StringVar(&baseURL, "url", "", "fleet server: the `URL` machines reach it at; the refs of --images files are made from it (default http://HOSTNAME:PORT)")
	fs.IntVar(&retries, "retries", 2, "fleet server: how often a failed flash is retried before the machine is quarantined")
	fs.StringVar(&quarantine, "quarantine", "disk", "fleet server: what a quarantined machine boots: disk or wizard")
	fs.IntVar(&keep, "events-keep", 100000, "fleet server: keep at most this many events (0: no limit)")
	fs.DurationVar(&maxAge, "events-max-age", 90*24*time.Hour, "fleet server: delete events, cycles and offers older than this (0: keep)")
	fs.DurationVar(&refresh, "refresh", 10*time.Minute, "fleet server: re-read the catalogs this often, to see moved tags (0: only at start)")
	px.register(fs)
	if ok, err := parseFlags(fs, args); !ok {
		return err
	}
	if err := px.check(fs, state); err != nil {
		return err
	}
	if px.observe {
		return observePXE(ctx, e, px, state, baseURL, listen)
	}
	if dir == "" {
		return usagef("--images is missing: name the directory of images to serve")
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return usagef("--images %s is not a directory: name the directory of images to serve", dir)
	}
	if state == "" {
		for _, f := range []struct {
			name string
			set  bool
		}{{"--boot", boot != ""}, {"--url", baseURL != ""}} {
			if f.set {
				return usagef("%s needs --state DIR: it is a fleet server option", f.name)
			}
		}
	}
	if boot != "" {
		if _, err := os.Stat(filepath.Join(boot, media.KernelName)); err != nil {
			return usagef("--boot %s has no %s: build it with bty media netboot --out %s", boot, media.KernelName, boot)
		}
	}
	if quarantine != "disk" && quarantine != "wizard" {
		return usagef("--quarantine %q: say disk or wizard", quarantine)
	}
	// The fleet server resolves oras:// tags with it too (server.Options).
	r := newResolver(e, nil, plainHTTP)
	var loaded []*catalog.Catalog
	for _, src := range catalogs {
		c, err := r.Load(ctx, src)
		if err != nil {
			return err
		}
		loaded = append(loaded, c)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return usagef("--listen %s: %v", listen, err)
	}
	addr := displayAddr(ln.Addr())
	version := "bty " + versionString()
	copt := catalog.ServerOptions{Dir: dir, Catalogs: loaded, Version: version, Log: e.stderr}
	if blocks, err = blockDir(e, blocks, state); err != nil {
		ln.Close()
		return err
	}
	if blocks != "" {
		if copt.Blocks, err = blockindex.OpenStore(blocks); err != nil {
			ln.Close()
			return usagef("--blocks %s: %v: name a directory bty can write, or none", blocks, err)
		}
		copt.Decode = decodeImage(blocks)
	}
	if state != "" {
		copt.Log = nil // the fleet server logs every request
	}
	cat := catalog.NewServer(copt)
	var handler http.Handler = cat
	var pxeFailed <-chan error // nil without --pxe: never ready
	var pxeDone <-chan struct{}
	go cat.Warm(ctx)
	if state != "" {
		st, err := store.OpenSQLite(filepath.Join(state, "fleet.db"), 0)
		if err != nil {
			ln.Close()
			return err
		}
		defer st.Close()
		if path, err := server.EnsureAdminToken(ctx, st, state, time.Now()); err != nil {
			ln.Close()
			return err
		} else if path != "" {
			fmt.Fprintf(e.stderr, "bty serve: the admin token is in %s (BTY_TOKEN=$(cat %s) bty fleet ...)\n", path, path)
		}
		pxeURL := baseURL // --url as given: without it, bty's answers name its address on --interface
		pwFile, err := server.EnsurePassword(ctx, st, state, e.getenv("BTY_ADMIN_PASSWORD"), time.Now())
		if err != nil {
			ln.Close()
			return err
		} else if pwFile != "" {
			fmt.Fprintf(e.stderr, "bty serve: the web UI's password is in %s (change it with bty fleet password)\n", pwFile)
		}
		if baseURL == "" {
			baseURL = "http://" + addr
		}
		if retries <= 0 {
			retries = -1 // Options: zero means the default
		}
		var ipxe, responder string
		if px.on {
			ipxe, responder = px.ipxeDir, "bty's proxyDHCP and TFTP: "+px.policy()
		}
		srv := server.New(server.Options{Store: st, Catalog: cat, ImagesDir: dir, BaseURL: baseURL, CatalogSources: catalogs, Resolver: r,
			BootDir: boot, Kernel: media.KernelName, Initrd: media.InitrdName, Version: version, Retries: retries,
			QuarantineWizard: quarantine == "wizard", EventsKeep: keep, EventsMaxAge: maxAge, Log: e.stderr, IPXEDir: ipxe,
			PXEResponder: responder, PasswordFile: filepath.Join(state, "admin.password")})
		defer srv.Close()
		if px.on {
			if pxeFailed, pxeDone, err = startPXE(ctx, e, px, srv, pxeURL, ln.Addr()); err != nil {
				ln.Close()
				return err
			}
		}
		go srv.Run(ctx, refresh)
		handler = srv
		fmt.Fprintf(e.stderr, "bty serve: fleet server at http://%s/ (state %s); PXE: http://%s/pxe-bootstrap.ipxe; web UI: http://%s/ui/\n", addr, state, addr, addr)
	}
	hs := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	fmt.Fprintf(e.stderr, "bty serve: serving %s at http://%s/catalog.toml\n", dir, addr)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case err := <-pxeFailed:
		hs.Close()
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hs.Shutdown(shutdown)
	if pxeDone != nil {
		<-pxeDone
	}
	fmt.Fprintln(e.stderr, "bty serve: stopped")
	return reported{ctx.Err()}
}

// displayAddr makes a wildcard listen address usable in a URL.
func displayAddr(a net.Addr) string {
	s := a.String()
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return s
	}
	if host == "" || host == "::" || host == "0.0.0.0" {
		if h, err := os.Hostname(); err == nil && !strings.ContainsAny(h, " /") {
			host = h
		}
	}
	return net.JoinHostPort(host, port)
}
