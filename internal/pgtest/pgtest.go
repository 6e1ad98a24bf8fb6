// Package pgtest runs a throwaway PostgreSQL server (Debian's postgresql
// package) for a test binary or a benchmark: initdb in a new temporary
// directory, the server listening on a unix socket there only, as the user
// nobody when run as root (PostgreSQL refuses to run as root), removed with
// everything in it by Stop.
//
//	TestMain -> m.Run -> a test: pgtest.DSN(t) -> (once) Start -> CREATE DATABASE bty_N -> dsn
//	         -> pgtest.Stop()   (the server and its directory)
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"bty/internal/testproc"
)

// Server is a running PostgreSQL server.
type Server struct {
	dir  string // socket directory; data/ and log inside
	cmd  *exec.Cmd
	exit chan error
	mu   sync.Mutex
	n    int // databases made
}

// ErrMissing: PostgreSQL is not installed.
var ErrMissing = errors.New("PostgreSQL is not installed (Debian: apt-get install postgresql)")

// bin finds a PostgreSQL program: on PATH, else in Debian's
// /usr/lib/postgresql/VERSION/bin, the newest version.
func bin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(dirs[i]))))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(dirs[j]))))
		return vi > vj
	})
	if len(dirs) == 0 {
		return "", ErrMissing
	}
	return dirs[0], nil
}

// Start runs a new server. durable keeps PostgreSQL's defaults (fsync,
// synchronous commit); otherwise they are off, which tests that do not
// crash the database can afford. settings are more "name=value" for
// postgres -c.
func Start(durable bool, settings ...string) (*Server, error) {
	initdb, err := bin("initdb")
	if err != nil {
		return nil, err
	}
	postgres, err := bin("postgres")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "bty-pg-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, exit: make(chan error, 1)}
	// As root, the server runs as nobody, which owns the directory.
	var asUser []string
	if os.Geteuid() == 0 {
		if err := os.Chown(dir, 65534, 65534); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		asUser = []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--pdeathsig=TERM", "--"}
	}
	command := func(args ...string) *exec.Cmd {
		args = append(asUser, args...)
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = dir
		return cmd
	}
	if out, err := command(initdb, "-D", filepath.Join(dir, "data"), "-U", "bty", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	args := []string{postgres, "-D", filepath.Join(dir, "data"), "-k", dir, "-c", "listen_addresses=", "-c", "max_connections=200"}
	if !durable {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	for _, set := range settings {
		args = append(args, "-c", set)
	}
	log, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer log.Close()
	s.cmd = command(args...)
	s.cmd.Stdout, s.cmd.Stderr = log, log
	testproc.DieWithTest(s.cmd)
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	go func() { s.exit <- s.cmd.Wait() }()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		conn, err := pgx.Connect(context.Background(), s.DSN("postgres"))
		if err == nil {
			conn.Close(context.Background())
			return s, nil
		}
		select {
		case err := <-s.exit:
			b, _ := os.ReadFile(filepath.Join(dir, "log"))
			os.RemoveAll(dir)
			return nil, fmt.Errorf("postgres exited (%v):\n%s", err, b)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("postgres did not answer in 2 minutes: %v", err)
		}
	}
}

// DSN is the URL of database db on s.
func (s *Server) DSN(db string) string {
	q := url.Values{"host": {s.dir}, "user": {"bty"}}
	return "postgres:///" + db + "?" + q.Encode()
}

// NewDatabase creates an empty database and returns its URL.
func (s *Server) NewDatabase() (string, error) {
	s.mu.Lock()
	s.n++
	name := fmt.Sprintf("bty_%d", s.n)
	s.mu.Unlock()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	return s.DSN(name), nil
}

// DropDatabase removes the database of dsn, disconnecting its clients.
func (s *Server) DropDatabase(dsn string) error {
	u, err := url.Parse(dsn)
	if err != nil {
		return err
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{strings.TrimPrefix(u.Path, "/")}.Sanitize()+" WITH (FORCE)")
	return err
}

// Log returns the server's log.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "log"))
	return string(b)
}

// Stop stops the server (a fast shutdown) and removes its directory.
func (s *Server) Stop() {
	testproc.Stop(s.cmd.Process, syscall.SIGINT, s.exit, 30*time.Second)
	os.RemoveAll(s.dir)
}

// The test binary's server, started by the first DSN.
var (
	shared    *Server
	sharedErr error
	once      sync.Once
)

// DSN returns the URL of a new, empty database on the test binary's server,
// starting it first; the database is dropped when t ends. It skips t when
// PostgreSQL is not installed.
func DSN(t testing.TB) string {
	t.Helper()
	once.Do(func() { shared, sharedErr = Start(false) })
	if errors.Is(sharedErr, ErrMissing) {
		t.Skip(sharedErr)
	}
	if sharedErr != nil {
		t.Fatalf("start PostgreSQL: %v", sharedErr)
	}
	dsn, err := shared.NewDatabase()
	if err != nil {
		t.Fatalf("create a database: %v", err)
	}
	t.Cleanup(func() {
		if err := shared.DropDatabase(dsn); err != nil {
			t.Logf("drop the test database: %v", err)
		}
	})
	return dsn
}

// Available reports whether DSN can start a server: PostgreSQL is installed.
func Available() error {
	_, err := bin("initdb")
	return err
}

// Stop stops the test binary's server, if DSN started it. TestMain calls it
// after m.Run.
func Stop() {
	if shared != nil {
		shared.Stop()
		shared = nil
	}
}

// RunTwice is the TestMain of a package whose tests run on both stores: m's
// tests on SQLite, then onPostgres (which switches the package's backend)
// and the same tests again, then Stop. It returns the exit code.
func RunTwice(m *testing.M, onPostgres func()) int {
	code := m.Run()
	onPostgres()
	fmt.Println("=== the same tests on PostgreSQL")
	if c := m.Run(); code == 0 {
		code = c
	}
	Stop()
	return code
}
