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

const serveUsage = `bty serve --images DIR [--catalog SRC]... [--listen ADDR]
                 [--blocks DIR|none]
       bty serve --images DIR --state DIR|URL [--secrets DIR] [--boot DIR]
                 [--url URL] [--catalog SRC]... [--listen ADDR]
                 [--cache DIR [--cache-max SIZE]]
                 [--pxe [--interface IF] [--pxe-known-only] [--ipxe-dir DIR]]
                 [--dhcp-observe]`

// blockDir returns the block store's directory: --blocks, else STATE/blocks
// for a --state directory (a postgres:// state has no directory of its own),
// else the user's cache; "" for --blocks none.
func blockDir(e env, flag, state string) (string, error) {
	switch {
	case flag == "none":
		return "", nil
	case flag != "":
		return flag, nil
	case state != "" && !store.IsURL(state):
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

// serveFlags are bty serve's flags.
type serveFlags struct {
	dir, listen, state, secrets, boot, baseURL, quarantine, cacheDir, cacheMax, blocks string
	catalogs                                                                           multiFlag
	plainHTTP                                                                          bool
	retries, keep                                                                      int
	maxAge, refresh                                                                    time.Duration
	px                                                                                 pxeFlags
	capBytes                                                                           int64 // --cache-max, parsed by check
}

func (f *serveFlags) register(fs *flagSet) {
	fs.StringVar(&f.dir, "images", "", "directory `DIR` of images to serve (required)")
	fs.Var(&f.catalogs, "catalog", "catalog `SRC` whose entries are listed too (TOML file, http(s) URL, oras:// ref); repeatable")
	fs.StringVar(&f.listen, "listen", ":8080", "address `ADDR` to listen on")
	fs.StringVar(&f.blocks, "blocks", "", "block store `DIR` of delta reflash: each image's block index and blocks (default STATE/blocks with a --state directory, else $XDG_CACHE_HOME/bty/blocks); none: no block indexes")
	fs.BoolVar(&f.plainHTTP, "plain-http", false, "talk plain HTTP to oras:// registries that are not on loopback")
	fs.StringVar(&f.state, "state", "", "fleet server: directory `DIR` of its state (database, admin token), or a postgres:// URL of a database that several servers share")
	fs.StringVar(&f.secrets, "secrets", "", "fleet server: directory `DIR` where the first start writes admin.token and admin.password (default: the --state directory; needed with a URL)")
	fs.StringVar(&f.boot, "boot", "", "fleet server: directory `DIR` of the live environment (bty media netboot --out DIR), served under /boot/")
	fs.StringVar(&f.baseURL, "url", "", "fleet server: the `URL` machines reach it at; the refs of --images files are made from it (default http://HOSTNAME:PORT)")
	fs.IntVar(&f.retries, "retries", 2, "fleet server: how often a failed flash is retried before the machine is quarantined")
	fs.StringVar(&f.quarantine, "quarantine", "disk", "fleet server: what a quarantined machine boots: disk or wizard")
	fs.IntVar(&f.keep, "events-keep", 100000, "fleet server: keep at most this many events (0: no limit)")
	fs.DurationVar(&f.maxAge, "events-max-age", 90*24*time.Hour, "fleet server: delete events, cycles and offers older than this (0: keep)")
	fs.DurationVar(&f.refresh, "refresh", 10*time.Minute, "fleet server: re-read the catalogs this often, to see moved tags (0: only at start)")
	fs.StringVar(&f.cacheDir, "cache", "", "fleet server: directory `DIR` of the image cache: machines read remote images through it, the origin once")
	fs.StringVar(&f.cacheMax, "cache-max", "", "fleet server: the cache's cap, e.g. 200G; the least recently used images go first (default: no cap)")
	f.px.register(fs)
}

// check refuses what cannot be served: no image directory, fleet options
// without --state, a state URL without --secrets, a --boot directory without
// a live environment. It fills in secrets and capBytes.
func (f *serveFlags) check() error {
	if f.dir == "" {
		return usagef("--images is missing: name the directory of images to serve")
	}
	if fi, err := os.Stat(f.dir); err != nil || !fi.IsDir() {
		return usagef("--images %s is not a directory: name the directory of images to serve", f.dir)
	}
	if f.state == "" {
		for _, o := range []struct {
			name string
			set  bool
		}{{"--boot", f.boot != ""}, {"--url", f.baseURL != ""}, {"--secrets", f.secrets != ""}, {"--cache", f.cacheDir != ""}} {
			if o.set {
				return usagef("%s needs --state DIR: it is a fleet server option", o.name)
			}
		}
	}
	if f.secrets == "" && !store.IsURL(f.state) {
		f.secrets = f.state
	}
	if f.secrets == "" && f.state != "" {
		return usagef("--state %s needs --secrets DIR: the directory where the first server writes admin.token", store.Redact(f.state))
	}
	if f.boot != "" {
		if _, err := os.Stat(filepath.Join(f.boot, media.KernelName)); err != nil {
			return usagef("--boot %s has no %s: build it with bty media netboot --out %s", f.boot, media.KernelName, f.boot)
		}
	}
	if f.quarantine != "disk" && f.quarantine != "wizard" {
		return usagef("--quarantine %q: say disk or wizard", f.quarantine)
	}
	if f.cacheMax != "" {
		if f.cacheDir == "" {
			return usagef("--cache-max needs --cache DIR")
		}
		var err error
		if f.capBytes, err = parseSize(f.cacheMax); err != nil {
			return usagef("--cache-max %q: %v", f.cacheMax, err)
		}
	}
	return nil
}

// cmdServe: the HTTP catalog, and with --state the fleet server.
func cmdServe(ctx context.Context, e env, args []string) error {
	var f serveFlags
	fs := newFlagSet(e, "serve", serveUsage+"\n\nServes the images of DIR, and the entries of the catalogs, as an HTTP catalog\n(GET /catalog.toml) that bty --catalog reads; with --state, also the fleet\nserver (docs/fleet.md).")
	f.register(fs)
	if ok, err := parseFlags(fs, args); !ok {
		return err
	}
	if err := f.px.check(fs, f.state); err != nil {
		return err
	}
	if f.px.observe {
		return observePXE(ctx, e, f.px, f.state, f.baseURL, f.listen)
	}
	if err := f.check(); err != nil {
		return err
	}
	// The fleet server resolves oras:// tags with it too (server.Options).
	r := newResolver(e, nil, f.plainHTTP)
	var loaded []*catalog.Catalog
	for _, src := range f.catalogs {
		c, err := r.Load(ctx, src)
		if err != nil {
			return err
		}
		loaded = append(loaded, c)
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return usagef("--listen %s: %v", f.listen, err)
	}
	defer ln.Close() // hs.Serve closes it too; this covers the returns before it
	version := "bty " + versionString()
	cat, err := f.catalogServer(e, loaded, version)
	if err != nil {
		return err
	}
	go cat.Warm(ctx)
	h := serving{handler: cat}
	if f.state != "" {
		var closeFleet func()
		if h, closeFleet, err = f.startFleet(ctx, e, cat, r, ln.Addr(), version); err != nil {
			return err
		}
		defer closeFleet()
	}
	return h.serve(ctx, e, ln, f.dir)
}

// catalogServer is the HTTP catalog of --images and --catalog, with the
// block store of delta reflash unless --blocks none.
func (f *serveFlags) catalogServer(e env, loaded []*catalog.Catalog, version string) (*catalog.Server, error) {
	copt := catalog.ServerOptions{Dir: f.dir, Catalogs: loaded, Version: version, Log: e.stderr}
	blocks, err := blockDir(e, f.blocks, f.state)
	if err != nil {
		return nil, err
	}
	if blocks != "" {
		if copt.Blocks, err = blockindex.OpenStore(blocks); err != nil {
			return nil, usagef("--blocks %s: %v: name a directory bty can write, or none", blocks, err)
		}
		copt.Decode = decodeImage(blocks)
	}
	if f.state != "" {
		copt.Log = nil // the fleet server logs every request
	}
	return catalog.NewServer(copt), nil
}

// serving is what bty serve answers with, and the netboot services that end
// it when they fail (nil channels without --pxe).
type serving struct {
	handler   http.Handler
	pxeFailed <-chan error
	pxeDone   <-chan struct{}
}

// startFleet opens the fleet's state and starts the fleet server (and with
// --pxe its netboot services) in front of cat: what to serve, and a func
// that closes the server and the store.
func (f *serveFlags) startFleet(ctx context.Context, e env, cat *catalog.Server, r *catalog.Resolver, laddr net.Addr, version string) (h serving, closeFleet func(), err error) {
	st, err := store.Open(ctx, f.state)
	if err != nil {
		return h, nil, err
	}
	ok := false
	defer func() {
		if !ok {
			st.Close()
		}
	}()
	if path, err := server.EnsureAdminToken(ctx, st, f.secrets, time.Now()); err != nil {
		return h, nil, err
	} else if path != "" {
		fmt.Fprintf(e.stderr, "bty serve: the admin token is in %s (BTY_TOKEN=$(cat %s) bty fleet ...)\n", path, path)
	}
	pwFile, err := server.EnsurePassword(ctx, st, f.secrets, e.getenv("BTY_ADMIN_PASSWORD"), time.Now())
	if err != nil {
		return h, nil, err
	} else if pwFile != "" {
		fmt.Fprintf(e.stderr, "bty serve: the web UI's password is in %s (change it with bty fleet password)\n", pwFile)
	}
	addr := displayAddr(laddr)
	baseURL := f.baseURL // as given for netboot: without it, bty's answers name its address on --interface
	if baseURL == "" {
		baseURL = "http://" + addr
	}
	retries := f.retries
	if retries <= 0 {
		retries = -1 // Options: zero means the default
	}
	var cache *server.Cache
	if f.cacheDir != "" {
		if cache, err = server.OpenCache(f.cacheDir, f.capBytes); err != nil {
			return h, nil, usagef("%v", err)
		}
		fmt.Fprintf(e.stderr, "bty serve: image cache in %s (%s)\n", f.cacheDir, cache)
	}
	var ipxe, responder string
	if f.px.on {
		ipxe, responder = f.px.ipxeDir, "bty's proxyDHCP and TFTP: "+f.px.policy()
	}
	srv := server.New(server.Options{Store: st, Catalog: cat, ImagesDir: f.dir, BaseURL: baseURL, CatalogSources: f.catalogs, Resolver: r,
		BootDir: f.boot, Kernel: media.KernelName, Initrd: media.InitrdName, Version: version, Retries: retries,
		QuarantineWizard: f.quarantine == "wizard", EventsKeep: f.keep, EventsMaxAge: f.maxAge, Log: e.stderr, IPXEDir: ipxe,
		PXEResponder: responder, PasswordFile: filepath.Join(f.secrets, "admin.password"), Cache: cache})
	if f.px.on {
		if h.pxeFailed, h.pxeDone, err = startPXE(ctx, e, f.px, srv, f.baseURL, laddr); err != nil {
			srv.Close()
			return h, nil, err
		}
	}
	go srv.Run(ctx, f.refresh)
	h.handler = srv
	fmt.Fprintf(e.stderr, "bty serve: fleet server at http://%s/ (state %s); PXE: http://%s/pxe-bootstrap.ipxe; web UI: http://%s/ui/\n", addr, store.Redact(f.state), addr, addr)
	ok = true
	return h, func() { srv.Close(); st.Close() }, nil
}

// serve answers HTTP on ln until ctx ends (then shuts down within 5 s and
// waits for netboot) or serving or netboot fails.
func (h serving) serve(ctx context.Context, e env, ln net.Listener, dir string) error {
	hs := &http.Server{Handler: h.handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	fmt.Fprintf(e.stderr, "bty serve: serving %s at http://%s/catalog.toml\n", dir, displayAddr(ln.Addr()))
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case err := <-h.pxeFailed:
		hs.Close()
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hs.Shutdown(shutdown)
	if h.pxeDone != nil {
		<-h.pxeDone
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
