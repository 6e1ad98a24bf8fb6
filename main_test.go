package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"bty/internal/need"
	"bty/internal/testproc"
)

// btyBin is the binary under test, built once by TestMain.
var btyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bty-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	btyBin = filepath.Join(dir, "bty")
	// bty serve's block store defaults to the user's cache: the tests' go
	// to their temporary directory.
	os.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	out, err := exec.Command("go", "build", "-o", btyBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what a run of the binary did.
type result struct {
	stdout, stderr string
	code           int
}

// runBty runs the binary with args and returns its output and exit code.
func runBty(t *testing.T, args ...string) result {
	t.Helper()
	return runBtyEnv(t, nil, args...)
}

// runBtyEnv is runBty with variables added to the environment.
func runBtyEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	return runCmd(t, env, nil, args...)
}

// runBtyStdin is runBty with a file as standard input, a pipe from cat.
func runBtyStdin(t *testing.T, file string, args ...string) result {
	t.Helper()
	cat := exec.Command("cat", file)
	out, err := cat.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.Start(); err != nil {
		t.Fatal(err)
	}
	r := runCmd(t, nil, out, args...)
	out.Close() // bty may stop reading early: cat then ends with EPIPE
	cat.Wait()
	return r
}

// runCmd runs the binary with env added and stdin (nil: none), and returns
// its output and exit code.
func runCmd(t *testing.T, env []string, stdin io.Reader, args ...string) result {
	t.Helper()
	return runCmdUnder(t, nil, env, stdin, args...)
}

// runCmdUnder is runCmd with the binary run by another command: under is
// that command and its arguments, e.g. inNetns(ns); nil runs it directly.
func runCmdUnder(t *testing.T, under []string, env []string, stdin io.Reader, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := btyCommand(ctx, under, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run bty %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// btyCommand is the binary with args, run by the command under (nil: none).
func btyCommand(ctx context.Context, under []string, args ...string) *exec.Cmd {
	if len(under) == 0 {
		return testproc.DieWithTest(exec.CommandContext(ctx, btyBin, args...))
	}
	return testproc.DieWithTest(exec.CommandContext(ctx, under[0], append(append(under[1:len(under):len(under)], btyBin), args...)...))
}

// inNetns runs a command inside the network namespace ns.
func inNetns(ns string) []string { return []string{"ip", "netns", "exec", ns} }

// requireRoot skips a test that needs loop devices or mounts.
func requireRoot(t *testing.T) {
	t.Helper()
	need.Root(t, "loop devices")
}

// requireTool skips a test when a command it needs is missing, naming the
// Debian package.
func requireTool(t *testing.T, names ...string) {
	t.Helper()
	need.Tools(t, names...)
}

// newLoop creates a loop device over a file of size bytes filled with random
// data, with the given logical sector size, and detaches it when the test ends.
func newLoop(t *testing.T, size int64, sector int) string {
	t.Helper()
	requireRoot(t)
	back := filepath.Join(t.TempDir(), "backing")
	writeFile(t, back, randomBytes(t, int(size)))
	out, err := exec.Command("losetup", "--find", "--show", "--sector-size", fmt.Sprint(sector), back).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v: %s", dev, err, out)
		}
	})
	return dev
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// readDev reads the first n bytes of a device or file.
func readDev(t *testing.T, dev string, n int) []byte {
	t.Helper()
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatalf("read %s: %v", dev, err)
	}
	return b
}

// sh runs a shell command line, failing the test if it fails.
func sh(t *testing.T, script string) {
	t.Helper()
	if out, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// firstDiff describes where two byte slices first differ, for failure messages.
func firstDiff(a, b []byte) string {
	if len(a) != len(b) {
		return fmt.Sprintf("lengths %d and %d", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			return fmt.Sprintf("first difference at byte %d (%#x vs %#x)", i, a[i], b[i])
		}
	}
	return "equal"
}
