package fleet

import (
	"fmt"
	"os"
	"strings"

	"bty/wire"
)

// Config is where the plan comes from.
type Config struct {
	Server string // normalised: scheme://host[:port][/path], no trailing slash
	MAC    string // normalised: aa:bb:cc:dd:ee:ff
}

// NormalizeServer gives a bare host an http:// scheme and drops a trailing "/".
func NormalizeServer(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("server URL is empty: give --server URL or bty.server= on the kernel command line")
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	if !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://") {
		return "", fmt.Errorf("server %q: only http:// and https:// servers are supported", s)
	}
	return strings.TrimRight(s, "/"), nil
}

// Cmdline holds the bty.* parameters of a kernel command line.
type Cmdline map[string]string

// ReadCmdline parses the bty.* parameters of the kernel command line at path
// (normally /proc/cmdline). A missing file gives an empty Cmdline.
func ReadCmdline(path string) (Cmdline, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return Cmdline{}, nil
	}
	if err != nil {
		return nil, err
	}
	return ParseCmdline(string(b)), nil
}

// ParseCmdline takes key=value words whose key starts with "bty."; double
// quotes around a value are removed.
func ParseCmdline(s string) Cmdline {
	c := Cmdline{}
	for _, w := range splitCmdline(s) {
		k, v, _ := strings.Cut(w, "=")
		if strings.HasPrefix(k, "bty.") {
			c[k] = v
		}
	}
	return c
}

// splitCmdline splits at spaces outside double quotes, as the kernel does.
func splitCmdline(s string) []string {
	var words []string
	var b strings.Builder
	quoted := false
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
		case (r == ' ' || r == '\n' || r == '\t') && !quoted:
			if b.Len() > 0 {
				words = append(words, b.String())
				b.Reset()
			}
		default:
			b.WriteRune(r)
		}
	}
	if b.Len() > 0 {
		words = append(words, b.String())
	}
	return words
}

// NewConfig builds a Config from flags, falling back to the command line's
// bty.server and bty.mac.
func NewConfig(server, mac string, c Cmdline) (Config, error) {
	if server == "" {
		server = c["bty.server"]
	}
	if mac == "" {
		mac = c["bty.mac"]
	}
	s, err := NormalizeServer(server)
	if err != nil {
		return Config{}, err
	}
	if mac == "" {
		return Config{}, fmt.Errorf("no MAC: give --mac MAC or bty.mac= on the kernel command line")
	}
	m, err := wire.NormalizeMAC(mac)
	if err != nil {
		return Config{}, err
	}
	return Config{Server: s, MAC: m}, nil
}
