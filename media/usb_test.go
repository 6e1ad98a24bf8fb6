package media

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"bty/gpt"
)

// usbInputs writes a fake kernel and module tree, a fake shim and GRUB for
// UEFI (the kernel then is taken unsigned) and two images (one with a
// sidecar), and returns options for them; busybox stands in for bty (any
// static executable does). GRUB for BIOS is Debian's.
func usbInputs(t *testing.T) USBOptions {
	t.Helper()
	needBusybox(t)
	needGrubPC(t)
	dir := t.TempDir()
	shim, grub := filepath.Join(dir, "shimx64.efi"), filepath.Join(dir, "grubx64.efi")
	writeFile(t, shim, append([]byte("MZ"), bytes.Repeat([]byte{1}, 5000)...))
	writeFile(t, grub, append([]byte("MZ"), bytes.Repeat([]byte{2}, 7000)...))
	imgs := filepath.Join(dir, "images")
	a := bytes.Repeat([]byte("image a "), 300000)
	writeFile(t, filepath.Join(imgs, "a.img"), a)
	sum := sha256.Sum256(a)
	writeFile(t, filepath.Join(imgs, "a.img.sha256"), []byte(strings.ToUpper(hexString(sum[:]))+"  a.img\n"))
	writeFile(t, filepath.Join(imgs, "b.img.gz"), []byte("\x1f\x8b not really"))
	return USBOptions{
		Kernel:    fakeKernel(t, dir, "6.1.0-test"),
		Initramfs: InitramfsOptions{Bty: DefaultBusybox, Modules: fakeModules(t, dir, "6.1.0-test"), CACerts: "-"},
		Chain:     BootChain{Shim: shim, GrubEFI: grub, UnsignedKernel: true},
		Append:    "bty.image=a.img bty.disk=serial:S1 bty.yes=1",
		Images:    []string{filepath.Join(imgs, "a.img"), filepath.Join(imgs, "b.img.gz")},
		Catalog:   []byte("version = 1\n"),
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	var s strings.Builder
	for _, c := range b {
		s.WriteByte(digits[c>>4])
		s.WriteByte(digits[c&15])
	}
	return s.String()
}

func fileSum(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestBuildUSB builds twice from the same inputs (same bytes), then checks the
// partition table, the boot code for BIOS, both file systems and their files.
func TestBuildUSB(t *testing.T) {
	o := usbInputs(t)
	out := t.TempDir()
	var sums [][32]byte
	var usb *USB
	for _, name := range []string{"one.img", "two.img"} {
		o.Out = filepath.Join(out, name)
		var err error
		if usb, err = BuildUSB(o); err != nil {
			t.Fatalf("BuildUSB: %v", err)
		}
		sums = append(sums, fileSum(t, o.Out))
	}
	if sums[0] != sums[1] {
		t.Errorf("two builds from the same inputs differ")
	}
	wantA := sha256.Sum256(bytes.Repeat([]byte("image a "), 300000))
	if usb.Images[0].Name != "a.img" || usb.Images[0].SHA256 != hexString(wantA[:]) {
		t.Errorf("BuildUSB images = %+v, want a.img with its digest first", usb.Images)
	}

	p := o.Out
	// BTY_IMAGES: the images, a sidecar for each, the catalog.
	label, files := exfatReadAll(t, p, int64(imagesStart(t, p))*sectorSize)
	if label != ImagesLabel {
		t.Errorf("images label = %q, want %q", label, ImagesLabel)
	}
	var names []string
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	if want := []string{"a.img", "a.img.sha256", "b.img.gz", "b.img.gz.sha256", "catalog.toml"}; !slices.Equal(names, want) {
		t.Errorf("BTY_IMAGES holds %q, want %q", names, want)
	}
	if got, want := string(files["a.img.sha256"]), hexString(wantA[:])+"  a.img\n"; got != want {
		t.Errorf("a.img.sha256 = %q, want %q", got, want)
	}

	needTool(t, "sgdisk", "fsck.vfat", "fsck.exfat", "mtype")
	if out, err := exec.Command("sgdisk", "-v", p).CombinedOutput(); err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("sgdisk -v: %v\n%s", err, out)
	}
	esp := extract(t, p, 2048, int64(imagesStart(t, p))-2048)
	if out, err := exec.Command("fsck.vfat", "-n", esp).CombinedOutput(); err != nil {
		t.Errorf("fsck.vfat -n: %v\n%s", err, out)
	}
	cfg, err := exec.Command("mtype", "-i", esp, "::/EFI/debian/grub.cfg").Output()
	if err != nil || !strings.Contains(string(cfg), "\tlinux /vmlinuz "+DefaultCmdline+" "+o.Append+"\n\tinitrd /initrd.img\n") {
		t.Errorf("EFI/debian/grub.cfg = %q, %v; want the entry with %q", cfg, err, o.Append)
	}
	for _, f := range []struct{ path, src string }{{"EFI/BOOT/BOOTX64.EFI", o.Chain.Shim}, {"EFI/BOOT/grubx64.efi", o.Chain.GrubEFI}} {
		got, err := exec.Command("mtype", "-i", esp, "::/"+f.path).Output()
		want, _ := os.ReadFile(f.src)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s on the EFI system partition: %v; want the bytes of %s", f.path, err, f.src)
		}
	}
	// BIOS: GRUB's boot code in the MBR points at its core image in the BIOS
	// boot partition, whose first sector (diskboot) lists the rest.
	if out, err := exec.Command("sgdisk", "-i", "3", p).Output(); err != nil || !strings.Contains(string(out), "21686148-6449-6E6F-744E-656564454649 (BIOS boot partition)") ||
		!strings.Contains(string(out), "First sector: 40 ") || !strings.Contains(string(out), "Last sector: 2047 ") {
		t.Errorf("sgdisk -i 3: %v\n%s; want a BIOS boot partition on sectors 40 to 2047", err, out)
	}
	disk, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	bootImg, _ := os.ReadFile(filepath.Join(DefaultGrubPC, "boot.img"))
	diskboot, _ := os.ReadFile(filepath.Join(DefaultGrubPC, "diskboot.img"))
	if !bytes.Equal(disk[:0x5c], bootImg[:0x5c]) || binary.LittleEndian.Uint64(disk[0x5c:]) != 40 || disk[510] != 0x55 || disk[450] != 0xee {
		t.Errorf("the MBR is not GRUB's boot.img pointing at sector 40 before a protective partition table")
	}
	core := disk[40*sectorSize:]
	if !bytes.Equal(core[:500], diskboot[:500]) || binary.LittleEndian.Uint64(core[500:]) != 41 {
		t.Errorf("sector 40 is not GRUB's diskboot listing the core image from sector 41")
	}
	images := extract(t, p, imagesStart(t, p), -1)
	if out, err := exec.Command("fsck.exfat", "-n", images).CombinedOutput(); err != nil {
		t.Errorf("fsck.exfat -n: %v\n%s", err, out)
	}
}

// imagesStart reads the second partition's first sector from the GPT.
func imagesStart(t *testing.T, p string) uint64 {
	t.Helper()
	b := make([]byte, 8)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.ReadAt(b, 2*sectorSize+gpt.EntrySize+32)
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

// extract copies sectors [start, start+n) of p (n < 0: to the end) into a
// file, leaving all-zero blocks as holes so a large partition stays cheap.
func extract(t *testing.T, p string, start uint64, n int64) string {
	t.Helper()
	in, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if n < 0 {
		n = fi.Size()/sectorSize - int64(start)
	}
	out := filepath.Join(t.TempDir(), "part.img")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(n * sectorSize); err != nil {
		t.Fatal(err)
	}
	if err := copyFileAt(f, 0, exfatFile{name: p, size: n * sectorSize, open: func() (io.ReadCloser, error) {
		return io.NopCloser(io.NewSectionReader(in, int64(start)*sectorSize, n*sectorSize)), nil
	}}, false); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBuildUSBDefaultSize builds sticks at the default size ("just large
// enough") with images from a few KiB to a few hundred MiB, and checks that
// BTY_IMAGES keeps its 16 MiB to spare, that fsck.exfat accepts it, and that
// the partition table is sound. The images are sparse files: their size is
// what the layout depends on.
func TestBuildUSBDefaultSize(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sizes []int64
	}{
		{"one image of 4 KiB", []int64{4 << 10}},
		{"one image of 20 MB", []int64{20e6}},
		{"images of 4 KiB, 20 MB and 300 MiB", []int64{4 << 10, 20e6, 300 << 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := usbInputs(t)
			dir := t.TempDir()
			o.Images = nil
			var total int64
			for i, size := range tc.sizes {
				p := filepath.Join(dir, fmt.Sprintf("image-%d.img.xz", i))
				sparseFile(t, p, size)
				o.Images = append(o.Images, p)
				total += size
			}
			o.Out = filepath.Join(dir, "usb.img")
			usb, err := BuildUSB(o)
			if err != nil {
				t.Fatalf("BuildUSB at the default size with images of %d bytes: %v", tc.sizes, err)
			}
			if usb.Size < total {
				t.Errorf("the stick is %d bytes, smaller than its images (%d bytes)", usb.Size, total)
			}
			images := extract(t, o.Out, imagesStart(t, o.Out), -1)
			if free := exfatFreeBytes(t, images); free < 16<<20 {
				t.Errorf("BTY_IMAGES has %d bytes free, want at least 16 MiB", free)
			}
			needTool(t, "fsck.exfat", "sgdisk")
			if out, err := exec.Command("sgdisk", "-v", o.Out).CombinedOutput(); err != nil || !strings.Contains(string(out), "No problems found") {
				t.Errorf("sgdisk -v: %v\n%s", err, out)
			}
			if out, err := exec.Command("fsck.exfat", "-n", images).CombinedOutput(); err != nil {
				t.Errorf("fsck.exfat -n: %v\n%s", err, out)
			}
		})
	}
}

// sparseFile writes a file of size bytes that holds data only in its first and
// last bytes.
func sparseFile(t *testing.T, p string, size int64) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	n := min(size/2, 4096)
	f.WriteAt(bytes.Repeat([]byte("head"), int(n/4)), 0)
	f.WriteAt(bytes.Repeat([]byte("tail"), int(n/4)), size-n/4*4)
}

// exfatFreeBytes reads the volume's allocation bitmap, as the spec lays it
// out, and returns the bytes of its free clusters.
func exfatFreeBytes(t *testing.T, p string) int64 {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	boot := make([]byte, sectorSize)
	f.ReadAt(boot, 0)
	heap := int64(binary.LittleEndian.Uint32(boot[88:])) * sectorSize
	count := int64(binary.LittleEndian.Uint32(boot[92:]))
	cb := int64(sectorSize) << boot[109]
	root := int64(binary.LittleEndian.Uint32(boot[96:]))
	dir := make([]byte, cb)
	f.ReadAt(dir, heap+(root-2)*cb)
	for i := 0; i+32 <= len(dir); i += 32 {
		if dir[i] != 0x81 {
			continue
		}
		bitmap := make([]byte, binary.LittleEndian.Uint64(dir[i+24:]))
		f.ReadAt(bitmap, heap+(int64(binary.LittleEndian.Uint32(dir[i+20:]))-2)*cb)
		used := int64(0)
		for c := range count {
			used += int64(bitmap[c/8] >> (c % 8) & 1)
		}
		return (count - used) * cb
	}
	t.Fatalf("no allocation bitmap in the root directory of %s", p)
	return 0
}

func TestBuildUSBRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(o *USBOptions)
	}{
		{"sidecar disagrees", func(o *USBOptions) {
			writeFile(t, o.Images[1]+".sha256", []byte(strings.Repeat("0", 64)+"\n"))
		}},
		{"size too small", func(o *USBOptions) { o.Size = 64 << 20 }},
		{"size of one sector", func(o *USBOptions) { o.Size = sectorSize }},
		{"size that leaves BTY_IMAGES no room", func(o *USBOptions) { o.Size = 66 << 20 }},
		{"two images of one name", func(o *USBOptions) { o.Images = append(o.Images, o.Images[0]) }},
		{"dynamic bty", func(o *USBOptions) { o.Initramfs.Bty = "/bin/ls" }},
		{"modules of another kernel", func(o *USBOptions) { o.Kernel = fakeKernel(t, t.TempDir(), "6.1.0-other") }},
		{"a directory for a kernel", func(o *USBOptions) { o.Kernel = t.TempDir() }},
		{"no shim", func(o *USBOptions) { o.Chain.Shim = "/nonexistent.efi" }},
		{"GRUB is no EFI executable", func(o *USBOptions) { o.Chain.GrubEFI = o.Kernel }},
		{"no GRUB for BIOS", func(o *USBOptions) { o.Chain.GrubPC = t.TempDir() }},
		{"a kernel shim would refuse", func(o *USBOptions) {
			o.Chain.Shim, o.Chain.GrubEFI = "", ""
			o.Chain.UnsignedKernel = false
			needSecureBootChain(t)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := usbInputs(t)
			o.Out = filepath.Join(t.TempDir(), "usb.img")
			tc.change(&o)
			if _, err := BuildUSB(o); !errors.Is(err, ErrInput) {
				t.Errorf("BuildUSB = %v, want ErrInput", err)
			}
			if _, err := os.Stat(o.Out); err == nil {
				t.Errorf("BuildUSB failed but left %s", o.Out)
			}
		})
	}
}

func TestMissingToolNamesPackage(t *testing.T) {
	err := error(&MissingToolError{Path: DefaultShim, Package: "shim-signed", Why: "the boot loader"})
	if !errors.Is(err, ErrMissingTool) || !strings.Contains(err.Error(), "apt-get install shim-signed") {
		t.Errorf("MissingToolError = %q, want ErrMissingTool naming the package", err)
	}
}

// TestBuildInitramfs checks what the init needs is in the archive.
func TestBuildInitramfs(t *testing.T) {
	o := usbInputs(t).Initramfs
	o.ExtraModules = []string{"a"}
	gz, info, err := BuildInitramfs(o)
	if err != nil {
		t.Fatalf("BuildInitramfs: %v", err)
	}
	again, _, _ := BuildInitramfs(o)
	if !bytes.Equal(gz, again) {
		t.Errorf("two builds from the same inputs differ")
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	if !zr.ModTime.IsZero() || zr.Name != "" {
		t.Errorf("gzip header has a time (%v) or a name (%q)", zr.ModTime, zr.Name)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := readNewc(raw)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]cpioRec{}
	for _, r := range recs {
		byName[r.Name] = r
	}
	for name, mode := range map[string]uint32{
		"init": 0o100755, "bin/busybox": 0o100755, "bin/bty": 0o100755, "bin/sh": 0o120777,
		"dev/console": 0o20600, "etc/bty/udhcpc.script": 0o100755, "var/lib/bty/images": 0o40755,
		"lib/modules/6.1.0-test/kernel/sub/b.ko": 0o100644, "lib/modules/6.1.0-test/modules.dep": 0o100644,
	} {
		if r, ok := byName[name]; !ok || r.Mode != mode {
			t.Errorf("initramfs %s: mode %o (present %v), want %o", name, r.Mode, ok, mode)
		}
	}
	if got := byName["lib/modules/6.1.0-test/kernel/sub/b.ko"].Data; got != "module b" {
		t.Errorf("b.ko = %q, want it decompressed", got)
	}
	// Of the default list the fake tree has usb-storage; a is an extra. Each
	// comes after what it needs.
	if got, want := byName["etc/bty/modules"].Data, "6.1.0-test/kernel/c.ko\n6.1.0-test/kernel/usb-storage.ko\n6.1.0-test/kernel/sub/b.ko\n6.1.0-test/kernel/a.ko\n"; got != want {
		t.Errorf("etc/bty/modules = %q, want %q", got, want)
	}
	if !slices.Contains(info.Missing, "exfat") || slices.Contains(info.Missing, "usb_storage") {
		t.Errorf("Missing = %q, want exfat but not usb_storage", info.Missing)
	}
	if _, ok := byName["etc/ssl/certs/ca-certificates.crt"]; ok {
		t.Errorf("CA certificates present with CACerts = -")
	}

	o.ExtraModules = []string{"no_such_module"}
	if _, _, err := BuildInitramfs(o); !errors.Is(err, ErrInput) {
		t.Errorf("BuildInitramfs with an unknown extra module = %v, want ErrInput", err)
	}
}

// TestInitScriptSyntax parses the init and the DHCP hook with the shells at hand.
func TestInitScriptSyntax(t *testing.T) {
	for _, sh := range [][]string{{"sh", "-n"}, {DefaultBusybox, "sh", "-n"}} {
		if _, err := exec.LookPath(sh[0]); err != nil {
			continue
		}
		for _, f := range []string{"init.sh", "udhcpc.script"} {
			if out, err := exec.Command(sh[0], append(sh[1:], f)...).CombinedOutput(); err != nil {
				t.Errorf("%s %s: %v\n%s", strings.Join(sh, " "), f, err, out)
			}
		}
	}
}
