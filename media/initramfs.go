package media

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/klauspost/compress/gzip"
)

//go:embed init.sh
var initScript []byte

//go:embed udhcpc.script
var udhcpcScript []byte

// InitramfsOptions say what goes into the live environment's initramfs.
type InitramfsOptions struct {
	// Bty is the bty executable to put in it. It must be statically linked
	// (CGO_ENABLED=0): the initramfs has no C library.
	Bty string
	// Busybox is a static busybox, the init's shell and tools; "" means
	// DefaultBusybox (Debian's busybox-static).
	Busybox string
	// Modules is the kernel's module directory, lib/modules/<version>, or a
	// directory that holds exactly one (an unpacked kernel package).
	Modules string
	// ExtraModules are loaded besides DefaultModules; each must exist in
	// Modules or be built into the kernel.
	ExtraModules []string
	// CACerts is a PEM bundle of the certificate authorities bty trusts for
	// https:// images and catalogs; "" means DefaultCACerts when it exists,
	// "-" means none.
	CACerts string
	// KernelVersion, when set, must match the module directory's version.
	KernelVersion string
}

// InitramfsInfo says what went in.
type InitramfsInfo struct {
	KernelVersion string   // of the modules
	Modules       []string // loaded by the init, in order
	Missing       []string // wanted by DefaultModules, but the kernel has no such module
	Size          int64    // compressed size in bytes
}

// BuildInitramfs returns the gzip-compressed cpio archive of the live
// environment. The same inputs give the same bytes.
func BuildInitramfs(o InitramfsOptions) ([]byte, *InitramfsInfo, error) {
	busybox := o.Busybox
	if busybox == "" {
		busybox = DefaultBusybox
	}
	if err := checkBusybox(busybox); err != nil {
		return nil, nil, err
	}
	if o.Bty == "" {
		return nil, nil, inputf("no bty executable given")
	}
	if err := checkStatic(o.Bty, "bty", "build it with CGO_ENABLED=0 go build"); err != nil {
		return nil, nil, err
	}
	mt, err := readModuleTree(o.Modules)
	if err != nil {
		return nil, nil, err
	}
	if o.KernelVersion != "" && o.KernelVersion != mt.version {
		return nil, nil, inputf("the kernel is %s but the modules in %s are for %s: give the modules of the same kernel", o.KernelVersion, mt.dir, mt.version)
	}
	for _, m := range o.ExtraModules {
		n := moduleName(m)
		if _, ok := mt.mods[n]; !ok && !mt.builtin[n] {
			return nil, nil, inputf("module %s is not in %s", m, mt.dir)
		}
	}
	set, err := mt.resolve(append(append([]string{}, DefaultModules...), o.ExtraModules...))
	if err != nil {
		return nil, nil, err
	}

	t := newTree()
	for _, d := range []string{"bin", "dev", "etc", "proc", "root", "run", "sys", "tmp", "var/lib/bty/images"} {
		t.dir(d)
	}
	// The kernel opens /dev/console for the init's stdin and stdout before
	// devtmpfs is mounted: without this node the init has no console.
	t.charDev("dev/console", 0o600, 5, 1)
	t.file("init", 0o755, initScript)
	t.file("etc/bty/udhcpc.script", 0o755, udhcpcScript)
	t.file("etc/hostname", 0o644, []byte("bty\n"))
	t.file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n"))
	t.file("etc/group", 0o644, []byte("root:x:0:\n"))
	for _, f := range []struct{ src, dst, what string }{{busybox, "bin/busybox", "busybox"}, {o.Bty, "bin/bty", "bty"}} {
		b, err := os.ReadFile(f.src)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", f.what, err)
		}
		t.file(f.dst, 0o755, b)
	}
	// The init installs busybox's applets as symlinks; sh is needed to run it.
	t.symlink("bin/sh", "busybox")

	certs := o.CACerts
	if certs == "" {
		certs = DefaultCACerts
		if _, err := os.Stat(certs); errors.Is(err, fs.ErrNotExist) {
			certs = "-"
		}
	}
	if certs != "-" {
		b, err := os.ReadFile(certs)
		if err != nil {
			return nil, nil, fmt.Errorf("CA certificates: %w", err)
		}
		t.file("etc/ssl/certs/ca-certificates.crt", 0o644, b)
	}

	modRoot := path.Join("lib/modules", mt.version)
	var load bytes.Buffer
	info := &InitramfsInfo{KernelVersion: mt.version, Missing: set.missing}
	for _, m := range set.order {
		p := m.storedPath()
		t.file(path.Join(modRoot, p), 0o644, set.data[m.name])
		fmt.Fprintf(&load, "%s/%s\n", mt.version, p)
		info.Modules = append(info.Modules, m.name)
	}
	t.file("etc/bty/modules", 0o644, load.Bytes())
	t.file(path.Join(modRoot, "modules.dep"), 0o644, set.depFile(mt))

	var out bytes.Buffer
	zw, err := gzip.NewWriterLevel(&out, gzip.DefaultCompression) // level 9 takes 15x as long for 2% less
	if err != nil {
		return nil, nil, err
	}
	// A zero header: no name, no mtime, so the bytes depend on the contents only.
	if err := t.writeCPIO(zw); err != nil {
		return nil, nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, nil, err
	}
	info.Size = int64(out.Len())
	return out.Bytes(), info, nil
}

// String lists the modules the way the build report shows them.
func (i *InitramfsInfo) String() string {
	return fmt.Sprintf("kernel %s, %d modules: %s", i.KernelVersion, len(i.Modules), strings.Join(i.Modules, " "))
}
