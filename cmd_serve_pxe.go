package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"path/filepath"
	"sync"

	"bty/netboot"
	"bty/server"
	"bty/server/store"
)

// pxeFlags are bty serve's netboot flags: the proxyDHCP and TFTP server
// (package netboot) beside the fleet server.
type pxeFlags struct {
	on, knownOnly, observe bool
	iface, ipxeDir         string
}

func (p *pxeFlags) register(fs *flagSet) {
	fs.BoolVar(&p.on, "pxe", false, "fleet server: boot machines without changing the site's DHCP: proxyDHCP (UDP 67, 4011) and TFTP (69) for iPXE; needs root")
	fs.StringVar(&p.iface, "interface", "", "--pxe: the network interface `IF` facing the machines (default: the default route's)")
	fs.BoolVar(&p.knownOnly, "pxe-known-only", false, "--pxe: answer registered machines only (default: every netboot client; new ones are registered as bty-inventory)")
	fs.StringVar(&p.ipxeDir, "ipxe-dir", netboot.DefaultIPXEDir, "--pxe: directory `DIR` of undionly.kpxe and ipxe.efi (Debian's ipxe package)")
	fs.BoolVar(&p.observe, "dhcp-observe", false, "--pxe: answer nothing; print what each machine asked, what every DHCP server answered and what bty would answer")
}

// check refuses netboot flags without --pxe, and --pxe without --state.
func (p *pxeFlags) check(fs *flagSet, state string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, name := range []string{"interface", "pxe-known-only", "ipxe-dir", "dhcp-observe"} {
		if set[name] && !p.on {
			return usagef("--%s needs --pxe", name)
		}
	}
	if p.on && state == "" {
		return usagef("--pxe needs --state DIR: it is a fleet server option")
	}
	return nil
}

// base is the fleet server's URL in bty's answers: --url, or the listener's
// address, whose host netboot fills in with its address on the interface
// when it listens on all.
func (p *pxeFlags) base(url string, ln net.Addr) (string, error) {
	if url != "" {
		return url, nil
	}
	a, ok := ln.(*net.TCPAddr)
	switch {
	case !ok:
		return "", fmt.Errorf("--pxe: the HTTP listener %v has no TCP address", ln)
	case a.IP.IsLoopback():
		return "", usagef("--listen %v: machines cannot reach a loopback address: listen on all addresses (:%d) or on the --interface's", ln, a.Port)
	case a.IP.IsUnspecified():
		return fmt.Sprintf("http://:%d", a.Port), nil
	}
	return "http://" + a.String(), nil
}

// config is the netboot configuration; the fleet server decides whom to
// answer and takes the events.
func (p *pxeFlags) config(srv *server.Server, base string) netboot.Config {
	return netboot.Config{Interface: p.iface, HTTPBase: base, IPXEDir: p.ipxeDir,
		Answer: srv.PXEAnswer(p.knownOnly, p.observe), Event: srv.PXEEvent}
}

func (p *pxeFlags) policy() string {
	if p.knownOnly {
		return "registered machines only"
	}
	return "every netboot client, new ones registered as bty-inventory"
}

// startPXE starts the proxyDHCP and TFTP server beside the fleet server.
// failed gets its error if it stops before ctx ends; done is closed when it
// has stopped (its TFTP copies removed).
func startPXE(ctx context.Context, e env, p pxeFlags, srv *server.Server, url string, ln net.Addr) (failed <-chan error, done <-chan struct{}, err error) {
	base, err := p.base(url, ln)
	if err != nil {
		return nil, nil, err
	}
	nb, err := netboot.Listen(p.config(srv, base))
	if err != nil {
		return nil, nil, fmt.Errorf("--pxe: %w", err)
	}
	fail, stopped := make(chan error, 1), make(chan struct{})
	go func() {
		defer close(stopped)
		if err := nb.Serve(ctx); err != nil {
			fail <- err
		}
	}()
	fmt.Fprintf(e.stderr, "bty serve: PXE beside the site's DHCP at %s (proxyDHCP, TFTP from %s): %s; iPXE boots %s/pxe-bootstrap.ipxe\n",
		nb.Addr(), p.ipxeDir, p.policy(), nb.HTTPBase())
	return fail, stopped, nil
}

// observePXE is bty serve --pxe --dhcp-observe: it answers nothing (no
// DHCP, TFTP or HTTP, so it runs beside a serving bty as well as instead of
// it) and prints to stdout, one line each, what every machine asked, what
// every DHCP server answered and what bty, with these flags and the
// registry in STATE, would answer.
func observePXE(ctx context.Context, e env, p pxeFlags, state, url, listen string) error {
	base := url
	if base == "" {
		_, port, err := net.SplitHostPort(listen)
		if err != nil {
			return usagef("--listen %s: %v", listen, err)
		}
		base = "http://:" + port
	}
	st, err := store.OpenSQLite(filepath.Join(state, "fleet.db"), 0)
	if err != nil {
		return err
	}
	defer st.Close()
	srv := server.New(server.Options{Store: st, BaseURL: base, Log: e.stderr})
	defer srv.Close()
	var mu sync.Mutex
	cfg := p.config(srv, base)
	cfg.Observe = true
	cfg.Event = func(ev netboot.Event) {
		mu.Lock()
		defer mu.Unlock()
		if ev.Kind == netboot.KindConflict {
			fmt.Fprintf(e.stdout, "warning: %s\n", ev)
			return
		}
		fmt.Fprintln(e.stdout, ev)
	}
	nb, err := netboot.Listen(cfg)
	if err != nil {
		return fmt.Errorf("--pxe: %w", err)
	}
	fmt.Fprintf(e.stderr, "bty serve: observing DHCP at %s; bty answers nothing (would answer %s); Ctrl-C stops\n", nb.Addr(), p.policy())
	if err := nb.Serve(ctx); err != nil {
		return err
	}
	return reported{ctx.Err()}
}
