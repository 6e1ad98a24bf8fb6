package media

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// DefaultModules are the kernel modules the live environment loads, with
// their dependencies: what it takes to see the disks of most x86-64 machines
// (and of qemu), to read a USB stick and type on a USB keyboard, to reach a
// server over a common wired NIC, and to mount an exFAT or FAT partition.
// A module the kernel has built in, or does not have, is left out.
var DefaultModules = []string{
	// Disks: virtio (qemu, clouds), NVMe, AHCI and legacy SATA, SCSI disks,
	// MMC/SD.
	"virtio_pci", "virtio_blk", "virtio_scsi", "nvme", "ahci", "ata_piix", "sd_mod",
	"mmc_block", "sdhci_pci", "sdhci_acpi",
	// USB host controllers, storage and keyboards.
	"xhci_pci", "ehci_pci", "ohci_pci", "uhci_hcd", "usb_storage", "uas", "usbhid", "hid_generic",
	// Wired NICs.
	"virtio_net", "e1000", "e1000e", "igb", "igc", "ixgbe", "r8169", "tg3",
	// File systems of BTY_IMAGES and their code pages.
	"exfat", "vfat", "nls_cp437", "nls_ascii", "nls_utf8", "nls_iso8859_1",
}

// moduleName is how the kernel names a module: the file's base name without
// .ko and compression suffix, with '-' written '_'.
func moduleName(file string) string {
	b := filepath.Base(file)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

// kmod is one module file of a kernel's module tree.
type kmod struct {
	name string
	rel  string   // path relative to the module directory, as found (may end in .xz)
	deps []string // modules it needs loaded first (names)
}

// moduleTree is the module directory of one kernel, lib/modules/<version>.
type moduleTree struct {
	dir     string
	version string
	mods    map[string]*kmod
	builtin map[string]bool
	fromDep bool // dependencies came from modules.dep (else from each module's modinfo)
}

// findModuleDir accepts lib/modules/<version> itself, or a directory that
// holds exactly one lib/modules/<version> (the root of a `dpkg -x` of a kernel
// package).
func findModuleDir(dir string) (string, error) {
	if exists(filepath.Join(dir, "modules.order")) || exists(filepath.Join(dir, "modules.dep")) {
		return dir, nil
	}
	for _, base := range []string{filepath.Join(dir, "lib", "modules"), filepath.Join(dir, "usr", "lib", "modules"), dir} {
		des, err := os.ReadDir(base)
		if err != nil {
			continue
		}
		var found []string
		for _, de := range des {
			d := filepath.Join(base, de.Name())
			if de.IsDir() && (exists(filepath.Join(d, "modules.order")) || exists(filepath.Join(d, "modules.dep"))) {
				found = append(found, d)
			}
		}
		switch len(found) {
		case 1:
			return found[0], nil
		case 0:
		default:
			return "", inputf("modules: %s holds modules of several kernels (%s): name one lib/modules/<version>", base, strings.Join(found, ", "))
		}
	}
	return "", inputf("modules: %s is not a kernel module directory (no modules.order or modules.dep): give lib/modules/<version>", dir)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// readModuleTree indexes the modules of dir. Dependencies come from
// modules.dep when depmod has run; a kernel package unpacked with dpkg -x has
// none, so they are then read from each module's .modinfo section, which is
// what depmod itself reads.
func readModuleTree(dir string) (*moduleTree, error) {
	dir, err := findModuleDir(dir)
	if err != nil {
		return nil, err
	}
	t := &moduleTree{dir: dir, version: filepath.Base(dir), mods: map[string]*kmod{}, builtin: map[string]bool{}}
	if b, err := os.ReadFile(filepath.Join(dir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			t.builtin[moduleName(l)] = true
		}
	}
	if f, err := os.Open(filepath.Join(dir, "modules.dep")); err == nil {
		defer f.Close()
		t.fromDep = true
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			file, deps, ok := strings.Cut(sc.Text(), ":")
			if !ok {
				continue
			}
			m := &kmod{name: moduleName(file), rel: file}
			for _, d := range strings.Fields(deps) {
				m.deps = append(m.deps, moduleName(d))
			}
			t.mods[m.name] = m
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("read %s: %w", f.Name(), err)
		}
		return t, nil
	}
	err = filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if de.Type().IsRegular() && strings.Contains(de.Name(), ".ko") {
			rel, _ := filepath.Rel(dir, p)
			m := &kmod{name: moduleName(rel), rel: filepath.ToSlash(rel)}
			if _, dup := t.mods[m.name]; !dup {
				t.mods[m.name] = m
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("modules: %w", err)
	}
	if len(t.mods) == 0 {
		return nil, inputf("modules: no .ko files under %s", dir)
	}
	return t, nil
}

// modinfoDeps reads the depends= and softdep= pre: entries of a module's
// .modinfo section. A soft dependency (e.g. a checksum driver) is loaded first
// too when the tree has it.
func modinfoDeps(ko []byte) ([]string, error) {
	f, err := elf.NewFile(bytes.NewReader(ko))
	if err != nil {
		return nil, err
	}
	s := f.Section(".modinfo")
	if s == nil {
		return nil, errors.New("no .modinfo section")
	}
	info, err := s.Data()
	if err != nil {
		return nil, err
	}
	var deps []string
	for _, kv := range bytes.Split(info, []byte{0}) {
		k, v, _ := strings.Cut(string(kv), "=")
		switch k {
		case "depends":
			for _, d := range strings.Split(v, ",") {
				if d = strings.TrimSpace(d); d != "" {
					deps = append(deps, moduleName(d))
				}
			}
		case "softdep":
			// "pre: a b post: c"
			pre := false
			for _, w := range strings.Fields(v) {
				switch w {
				case "pre:":
					pre = true
				case "post:":
					pre = false
				default:
					if pre {
						deps = append(deps, "?"+moduleName(w))
					}
				}
			}
		}
	}
	return deps, nil
}

// readModule returns a module's bytes, decompressed: the kernel loads a
// compressed module only when built with CONFIG_MODULE_DECOMPRESS, an
// uncompressed one always, and the initramfs is compressed as a whole anyway.
func (t *moduleTree) readModule(m *kmod) ([]byte, error) {
	p := filepath.Join(t.dir, filepath.FromSlash(m.rel))
	raw, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var r io.Reader
	switch {
	case strings.HasSuffix(m.rel, ".xz"):
		r, err = xz.NewReader(bytes.NewReader(raw))
	case strings.HasSuffix(m.rel, ".zst"):
		var d *zstd.Decoder
		d, err = zstd.NewReader(bytes.NewReader(raw), zstd.WithDecoderConcurrency(1))
		if err == nil {
			defer d.Close()
			r = d
		}
	case strings.HasSuffix(m.rel, ".gz"):
		r, err = gzip.NewReader(bytes.NewReader(raw))
	default:
		return raw, nil
	}
	if err != nil {
		return nil, fmt.Errorf("decompress %s: %w", p, err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("decompress %s: %w", p, err)
	}
	return b, nil
}

// moduleSet is the result of resolving a list of wanted modules.
type moduleSet struct {
	order   []*kmod           // load order: every module after its dependencies
	data    map[string][]byte // name -> uncompressed .ko
	missing []string          // wanted, neither a module nor built in
}

// resolve returns wanted and their dependencies in load order. Modules built
// into the kernel are skipped; wanted modules the kernel lacks are listed in
// missing; a missing hard dependency is an error (the module could not load).
// Soft dependencies are taken when present.
func (t *moduleTree) resolve(wanted []string) (*moduleSet, error) {
	set := &moduleSet{data: map[string][]byte{}}
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name string, chain []string) error
	visit = func(name string, chain []string) error {
		soft := strings.HasPrefix(name, "?")
		name = strings.TrimPrefix(name, "?")
		switch state[name] {
		case 2:
			return nil
		case 1:
			return inputf("modules: dependency cycle %s -> %s", strings.Join(chain, " -> "), name)
		}
		m, ok := t.mods[name]
		if !ok {
			if t.builtin[name] || soft {
				return nil
			}
			if len(chain) == 0 {
				set.missing = append(set.missing, name)
				return nil
			}
			return inputf("modules: %s needs %s, which is neither in %s nor built in", chain[len(chain)-1], name, t.dir)
		}
		state[name] = 1
		data, err := t.readModule(m)
		if err != nil {
			return fmt.Errorf("modules: %w", err)
		}
		deps := m.deps
		if !t.fromDep {
			if deps, err = modinfoDeps(data); err != nil {
				return inputf("modules: %s: %v", m.rel, err)
			}
		}
		for _, d := range deps {
			if err := visit(d, append(chain, name)); err != nil {
				return err
			}
		}
		state[name] = 2
		set.data[name] = data
		set.order = append(set.order, m)
		return nil
	}
	seen := map[string]bool{}
	for _, w := range wanted {
		w = moduleName(w)
		if seen[w] {
			continue
		}
		seen[w] = true
		if err := visit(w, nil); err != nil {
			return nil, err
		}
	}
	return set, nil
}

// storedPath is where a module goes in the initramfs, relative to
// lib/modules/<version>: its path in the tree without a compression suffix.
func (m *kmod) storedPath() string {
	p := m.rel
	for _, s := range []string{".xz", ".zst", ".gz"} {
		p = strings.TrimSuffix(p, s)
	}
	return p
}

// depFile renders modules.dep for the modules of set, so busybox modprobe works
// in the rescue shell.
func (set *moduleSet) depFile(t *moduleTree) []byte {
	var b bytes.Buffer
	byName := map[string]*kmod{}
	for _, m := range set.order {
		byName[m.name] = m
	}
	lines := make([]string, 0, len(set.order))
	for _, m := range set.order {
		// modules.dep lists every module needed, transitively, nearest first.
		var deps []string
		seen := map[string]bool{}
		var walk func(n string)
		walk = func(n string) {
			dm := byName[n]
			if dm == nil {
				return
			}
			ds, _ := modinfoDeps(set.data[n])
			if t.fromDep {
				ds = dm.deps
			}
			for _, d := range ds {
				d = strings.TrimPrefix(d, "?")
				if !seen[d] && byName[d] != nil {
					seen[d] = true
					deps = append(deps, byName[d].storedPath())
					walk(d)
				}
			}
		}
		walk(m.name)
		lines = append(lines, m.storedPath()+": "+strings.Join(deps, " "))
	}
	slices.Sort(lines)
	for _, l := range lines {
		b.WriteString(strings.TrimRight(l, " ") + "\n")
	}
	return b.Bytes()
}
