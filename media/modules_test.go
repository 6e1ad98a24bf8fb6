package media

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestResolveModules(t *testing.T) {
	root := t.TempDir()
	dir := fakeModules(t, root, "6.1.0-test")
	for _, in := range []string{dir, root} {
		mt, err := readModuleTree(in)
		if err != nil {
			t.Fatalf("readModuleTree(%s): %v", in, err)
		}
		if mt.version != "6.1.0-test" {
			t.Errorf("readModuleTree(%s).version = %q, want 6.1.0-test", in, mt.version)
		}
		set, err := mt.resolve([]string{"a", "usb-storage", "builtin_one", "no_such", "a"})
		if err != nil {
			t.Fatalf("resolve: %v", err)
		}
		var order []string
		for _, m := range set.order {
			order = append(order, m.storedPath())
		}
		if want := []string{"kernel/c.ko", "kernel/sub/b.ko", "kernel/a.ko", "kernel/usb-storage.ko"}; !cmp.Equal(order, want) {
			t.Errorf("load order = %q, want %q", order, want)
		}
		if want := []string{"no_such"}; !cmp.Equal(set.missing, want) {
			t.Errorf("missing = %q, want %q", set.missing, want)
		}
		if got := string(set.data["b"]); got != "module b" {
			t.Errorf("b.ko.xz decompressed = %q, want %q", got, "module b")
		}
		dep := string(set.depFile(mt))
		want := "kernel/a.ko: kernel/sub/b.ko kernel/c.ko\nkernel/c.ko:\nkernel/sub/b.ko: kernel/c.ko\nkernel/usb-storage.ko: kernel/c.ko\n"
		if dep != want {
			t.Errorf("modules.dep =\n%s\nwant\n%s", dep, want)
		}
	}
}

func TestResolveModulesMissingDependency(t *testing.T) {
	dir := fakeModules(t, t.TempDir(), "6.1.0-test")
	writeFile(t, filepath.Join(dir, "modules.dep"), []byte("kernel/a.ko: kernel/gone.ko\n"))
	mt, err := readModuleTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mt.resolve([]string{"a"}); !errors.Is(err, ErrInput) {
		t.Errorf("resolve(a needing a missing module) = %v, want ErrInput", err)
	}
}

func TestFindModuleDir(t *testing.T) {
	empty := t.TempDir()
	if _, err := findModuleDir(empty); !errors.Is(err, ErrInput) {
		t.Errorf("findModuleDir(empty) = %v, want ErrInput", err)
	}
	two := t.TempDir()
	fakeModules(t, two, "6.1.0-a")
	fakeModules(t, two, "6.1.0-b")
	if _, err := findModuleDir(two); !errors.Is(err, ErrInput) {
		t.Errorf("findModuleDir(two kernels) = %v, want ErrInput", err)
	}
	os.RemoveAll(filepath.Join(two, "lib/modules/6.1.0-a"))
	if got, err := findModuleDir(two); err != nil || filepath.Base(got) != "6.1.0-b" {
		t.Errorf("findModuleDir(one kernel) = %q, %v, want .../6.1.0-b", got, err)
	}
}

// TestModinfoDeps reads dependencies from real modules when a kernel is
// unpacked for the VM tests.
func TestModinfoDeps(t *testing.T) {
	dir := os.Getenv("BTY_VM_KERNEL_DIR")
	if dir == "" {
		dir = "/var/cache/bty-test-kernel"
	}
	mt, err := readModuleTree(dir)
	if err != nil {
		t.Skipf("no unpacked kernel in %s (media/testdata/get-kernel.sh): %v", dir, err)
	}
	if mt.fromDep {
		t.Skip("the kernel has a modules.dep; this test reads .modinfo")
	}
	set, err := mt.resolve([]string{"usb_storage", "vfat"})
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, m := range set.order {
		pos[m.name] = i
	}
	for _, p := range [][2]string{{"usbcore", "usb_storage"}, {"scsi_mod", "usb_storage"}, {"fat", "vfat"}} {
		if _, ok := pos[p[0]]; !ok || pos[p[0]] > pos[p[1]] {
			t.Errorf("%s is not loaded before %s (order %v)", p[0], p[1], pos)
		}
	}
}
