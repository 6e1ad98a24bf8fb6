package media

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWriteCPIO(t *testing.T) {
	tr := newTree()
	tr.file("/bin/tool", 0o755, []byte("#!/bin/sh\n"))
	tr.symlink("bin/sh", "busybox")
	tr.charDev("dev/console", 0o600, 5, 1)
	tr.file("etc/a-b", 0o644, []byte("x"))
	tr.file("etc/a/b", 0o644, nil)
	var out bytes.Buffer
	if err := tr.writeCPIO(&out); err != nil {
		t.Fatal(err)
	}
	got, err := readNewc(out.Bytes())
	if err != nil {
		t.Fatalf("readNewc: %v", err)
	}
	// Sorted by path, so every directory comes before what it holds; numbered
	// in that order; mtime 0.
	want := []cpioRec{
		{Name: "bin", Mode: 0o40755, Ino: 1},
		{Name: "bin/sh", Mode: 0o120777, Data: "busybox", Ino: 2},
		{Name: "bin/tool", Mode: 0o100755, Data: "#!/bin/sh\n", Ino: 3},
		{Name: "dev", Mode: 0o40755, Ino: 4},
		{Name: "dev/console", Mode: 0o20600, Rdev: [2]uint32{5, 1}, Ino: 5},
		{Name: "etc", Mode: 0o40755, Ino: 6},
		{Name: "etc/a", Mode: 0o40755, Ino: 7},
		{Name: "etc/a-b", Mode: 0o100644, Data: "x", Ino: 8},
		{Name: "etc/a/b", Mode: 0o100644, Ino: 9},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("writeCPIO entries (-want +got):\n%s", d)
	}
	if out.Len()%4 != 0 {
		t.Errorf("archive length %d is not a multiple of 4", out.Len())
	}

	var again bytes.Buffer
	tr.writeCPIO(&again)
	if !bytes.Equal(out.Bytes(), again.Bytes()) {
		t.Errorf("two writes of the same tree differ")
	}

	// An independent reader agrees.
	lister := []string{"cpio", "-t", "--quiet"}
	if _, err := exec.LookPath("cpio"); err != nil {
		lister = []string{DefaultBusybox, "cpio", "-t"}
	}
	if _, err := exec.LookPath(lister[0]); err == nil {
		cmd := exec.Command(lister[0], lister[1:]...)
		cmd.Stdin = bytes.NewReader(out.Bytes())
		list, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", lister, err)
		}
		if got, want := strings.Fields(string(list)), []string{"bin", "bin/sh", "bin/tool", "dev", "dev/console", "etc", "etc/a", "etc/a-b", "etc/a/b"}; !cmp.Equal(got, want) {
			t.Errorf("%s = %q, want %q", lister, got, want)
		}
	}
}
