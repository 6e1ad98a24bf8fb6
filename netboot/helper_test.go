package netboot

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"bty/netboot/netboottest"
)

// TestMain runs the test binary as a responder process when a test asks
// for one (see startResponder): inside a namespace, a TFTP server must open
// its transfer sockets there, which only a process inside can do.
func TestMain(m *testing.M) {
	if cfg := os.Getenv("BTY_NETBOOT_RESPONDER"); cfg != "" {
		os.Exit(runResponder(cfg))
	}
	os.Exit(m.Run())
}

// responderConfig is what a responder process runs.
type responderConfig struct {
	IPXEDir string
	Observe bool
}

func runResponder(js string) int {
	var rc responderConfig
	if err := json.Unmarshal([]byte(js), &rc); err != nil {
		fmt.Println("error:", err)
		return 2
	}
	cfg := Config{Interface: netboottest.Bridge, HTTPBase: "http://:8080", IPXEDir: rc.IPXEDir, Observe: rc.Observe,
		Event: func(e Event) { fmt.Printf("%s: %s\n", e.Kind, e) }}
	s, err := Listen(cfg)
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("ready")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := s.Serve(ctx); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	return 0
}

// proc is a running responder process; its log is its events, one a
// line, "kind: MAC text".
type proc struct {
	lan  *netboottest.LAN
	name string
}

func (r proc) Log() string { return r.lan.Log(r.name) }

// Lines are the log's lines about mac (in the form 52:54:00:...).
func (r proc) Lines(mac string) []string { return netboottest.Lines(r.Log(), mac) }

// startResponder runs this test binary as a responder inside the LAN and
// waits until it is listening.
func startResponder(t *testing.T, lan *netboottest.LAN, name string, rc responderConfig) proc {
	t.Helper()
	js, _ := json.Marshal(rc)
	cmd := lan.Command(context.Background(), os.Args[0])
	cmd.Env = append(os.Environ(), "BTY_NETBOOT_RESPONDER="+string(js))
	lan.Start(cmd, name)
	r := proc{lan, name}
	if !netboottest.WaitFor(30*time.Second, func() bool {
		return strings.Contains(r.Log(), "ready") || strings.Contains(r.Log(), "error:")
	}) || !strings.Contains(r.Log(), "ready") {
		t.Fatalf("responder %s did not start:\n%s", name, r.Log())
	}
	return r
}

// requireIPXE skips unless Debian's ipxe package is installed.
func requireIPXE(t *testing.T) {
	t.Helper()
	for _, f := range []string{"undionly.kpxe", "ipxe.efi"} {
		if _, err := os.Stat(DefaultIPXEDir + "/" + f); err != nil {
			t.Skipf("netboot test: no %s/%s (apt-get install ipxe)", DefaultIPXEDir, f)
		}
	}
}

// bootstrap is the test's stand-in for the fleet server's HTTP side: the
// bootstrap script chains to a marker URL that names the machine and its
// platform, so the HTTP log proves iPXE ran the script.
func bootstrap() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /pxe-bootstrap.ipxe", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "#!ipxe\necho bty-test: bootstrap\nchain http://%s/marker?mac=${mac:hexhyp}&platform=${platform}\n", r.Host)
	})
	mux.HandleFunc("GET /marker", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "#!ipxe\necho bty-test: chain complete\nsleep 3600\n")
	})
	return mux
}
