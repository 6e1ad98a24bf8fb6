package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ulikunitz/xz"

	"bty/internal/need"
	"bty/internal/testproc"
	"bty/media"
	"bty/netboot/netboottest"
)

// VM tests: the live environment that bty media builds boots a Debian kernel in
// qemu under TCG (no KVM), with virtio disks that carry serials, and flashes.
// They need qemu-system-x86_64, a kernel unpacked by
// media/testdata/get-kernel.sh (into $BTY_VM_KERNEL_DIR, else
// /var/cache/bty-test-kernel), busybox-static, the boot chain (shim-signed,
// grub-efi-amd64-signed, grub-pc-bin and grub-common), and ovmf for the UEFI
// tests; each skips with a message when something is missing, and all skip
// with -short.

const (
	vmTarget = "VM-TARGET" // serial of the disk the tests flash
	vmDecoy  = "VM-DECOY"  // serial of a disk nothing may touch
	vmMAC    = "52:54:00:12:34:56"
	vmImage  = "disk.img.gz" // the image on BTY_IMAGES that the tests flash
	// Images of a few KiB and of 300 MiB beside vmImage on BTY_IMAGES.
	vmSmallImage = "small.img.xz"
	vmLargeImage = "a-large.img"
	// vmTimeout bounds one boot; under TCG on two cores a boot and flash
	// takes 15 to 40 s, through OVMF with Secure Boot about 50 s, and on a
	// machine shared with other builds and VMs (load 30) up to 3.5 minutes.
	vmTimeout = 6 * time.Minute
)

// vmKit is what every VM test boots: netboot files, and a USB image built at
// the default size whose BTY_IMAGES holds vmImage, vmSmallImage and
// vmLargeImage and whose boot entry flashes vmImage to vmTarget.
type vmKit struct {
	dir     string
	netboot string // directory with vmlinuz and initrd.img
	usb     string
	raw     []byte // vmImage decoded: what the target must hold
	kernel  string // the Debian kernel, and its modules
	modules string
	static  string // the static bty
}

// requireVM skips unless the tools and the kernel are there, and returns the
// kit, built once per test binary.
func requireVM(t *testing.T) *vmKit {
	t.Helper()
	if testing.Short() {
		t.Skip("VM test: skipped with -short")
	}
	// Each VM keeps one core busy; two run at a time under the default -parallel.
	t.Parallel()
	requireTool(t, "qemu-system-x86_64")
	kdir := os.Getenv("BTY_VM_KERNEL_DIR")
	if kdir == "" {
		kdir = "/var/cache/bty-test-kernel"
	}
	kernels, _ := filepath.Glob(filepath.Join(kdir, "boot", "vmlinuz-*"))
	if len(kernels) != 1 {
		t.Skipf("VM test: no kernel in %s/boot: run sh media/testdata/get-kernel.sh (.ci/run does)", kdir)
	}
	need.StaticBusybox(t)
	need.File(t, media.DefaultShim, "shim-signed")
	need.File(t, media.DefaultGrubEFI, "grub-efi-amd64-signed")
	need.File(t, filepath.Join(media.DefaultGrubPC, "boot.img"), "grub-pc-bin")
	need.Tools(t, "grub-mkimage")
	kit, err := vmKitOnce(kernels[0], kdir)
	if err != nil {
		t.Fatalf("build the boot media: %v", err)
	}
	return kit
}

var vmKitOnce = func() func(kernel, modules string) (*vmKit, error) {
	var once sync.Once
	var kit *vmKit
	var err error
	return func(kernel, modules string) (*vmKit, error) {
		once.Do(func() { kit, err = buildVMKit(kernel, modules) })
		return kit, err
	}
}()

func buildVMKit(kernel, modules string) (*vmKit, error) {
	// The kit lives beside the test binary, which TestMain removes.
	k := &vmKit{dir: filepath.Join(filepath.Dir(btyBin), "vm"), kernel: kernel, modules: modules}
	imgs := filepath.Join(k.dir, "images")
	if err := os.MkdirAll(imgs, 0o755); err != nil {
		return nil, err
	}
	// The initramfs needs a static bty.
	static := filepath.Join(k.dir, "bty")
	k.static = static
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", static, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("static build: %v\n%s", err, out)
	}

	// 5 MiB and a bit: random data, a run of zeros (written as a zeroed range),
	// and a tail that is no multiple of any sector size.
	rng := rand.New(rand.NewPCG(7, 7))
	k.raw = make([]byte, 5<<20+4099)
	for i := range k.raw {
		if i < 3<<20 || i >= 5<<20 {
			k.raw[i] = byte(rng.Uint32())
		}
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(k.raw)
	zw.Close()
	if err := os.WriteFile(filepath.Join(imgs, vmImage), gz.Bytes(), 0o644); err != nil {
		return nil, err
	}
	// Beside it, images of a few KiB and a few hundred MiB (sparse: the stick
	// stays sparse too), so that the stick's default size and its exFAT
	// layout (32 KiB clusters past 256 MiB) are what a real stick gets, and
	// vmImage sits behind the large one.
	var xzb bytes.Buffer
	xw, err := xz.NewWriter(&xzb)
	if err != nil {
		return nil, err
	}
	xw.Write(k.raw[:4096])
	xw.Close()
	if err := os.WriteFile(filepath.Join(imgs, vmSmallImage), xzb.Bytes(), 0o644); err != nil {
		return nil, err
	}
	large, err := os.Create(filepath.Join(imgs, vmLargeImage))
	if err != nil {
		return nil, err
	}
	defer large.Close()
	if _, err := large.Write(k.raw[:1<<20]); err != nil {
		return nil, err
	}
	if err := large.Truncate(300 << 20); err != nil {
		return nil, err
	}

	k.netboot = filepath.Join(k.dir, "netboot")
	k.usb = filepath.Join(k.dir, "usb.img")
	for _, args := range [][]string{
		{"netboot", "--out", k.netboot},
		{"usb", "--out", k.usb, "--images", imgs, "--append", vmStickOptions},
	} {
		if err := k.media(args...); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// vmStickOptions are the kernel options of the kit's sticks: flash vmImage to
// vmTarget, unattended. Notices (loglevel=6, after the default quiet) say
// whether the kernel was booted with Secure Boot on.
const vmStickOptions = "console=ttyS0 panic=-1 loglevel=6 bty.image=" + vmImage + " bty.disk=serial:" + vmTarget + " bty.yes=1"

// media runs bty media with the kit's kernel and modules.
func (k *vmKit) media(args ...string) error {
	args = append([]string{"media"}, append(args, "--kernel", k.kernel, "--modules", k.modules)...)
	if out, err := exec.Command(k.static, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("bty %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// disk is a virtual disk of a VM.
type disk struct {
	path   string
	serial string // "" for none
}

func (d disk) args(i int) []string {
	dev := fmt.Sprintf("virtio-blk-pci,drive=d%d", i)
	if d.serial != "" {
		dev += ",serial=" + d.serial
	}
	return []string{"-drive", fmt.Sprintf("file=%s,format=raw,if=none,id=d%d", d.path, i), "-device", dev}
}

// vmDisks returns a blank target, a decoy full of random bytes, and a check
// that the decoy is unchanged.
func vmDisks(t *testing.T) (target, decoy disk, decoyUnchanged func()) {
	t.Helper()
	dir := t.TempDir()
	target = disk{filepath.Join(dir, "target.img"), vmTarget}
	decoy = disk{filepath.Join(dir, "decoy.img"), vmDecoy}
	writeFile(t, target.path, make([]byte, 16<<20))
	junk := make([]byte, 16<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range junk {
		junk[i] = byte(rng.Uint32())
	}
	writeFile(t, decoy.path, junk)
	return target, decoy, func() {
		got, err := os.ReadFile(decoy.path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, junk) {
			t.Errorf("the decoy disk (serial %s) was written to", vmDecoy)
		}
	}
}

// checkTarget fails unless the target starts with the image's bytes.
func checkTarget(t *testing.T, k *vmKit, target disk) {
	t.Helper()
	got, err := os.ReadFile(target.path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < len(k.raw) || !bytes.Equal(got[:len(k.raw)], k.raw) {
		t.Errorf("the target does not hold the image byte for byte (first MiB zero: %v)", !bytes.ContainsFunc(got[:1<<20], func(r rune) bool { return r != 0 }))
	}
}

// vmRun says how to drive a VM: without until and answer, wait for qemu to
// exit; bty failing (the init's menu shows) fails the test.
type vmRun struct {
	// until, when set, stops the VM once the console's text satisfies it.
	until func(console string) bool
	// prompt and answer: type answer on the serial console once prompt shows.
	prompt, answer string
}

// runVM boots qemu with args under TCG and drives it as r says. The console
// log is returned, and written to the test log when the test fails.
func runVM(t *testing.T, r vmRun, args ...string) string {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "console.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	ctx, cancel := context.WithTimeout(context.Background(), vmTimeout)
	defer cancel()
	base := []string{"-accel", "tcg", "-m", "512M", "-display", "none", "-no-reboot", "-no-user-config", "-nodefaults", "-serial", "stdio"}
	cmd := testproc.DieWithTest(exec.CommandContext(ctx, "qemu-system-x86_64", append(base, args...)...))
	cmd.Stdout, cmd.Stderr = logf, logf
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	console := func() string {
		b, _ := os.ReadFile(logPath)
		return string(b)
	}
	defer func() {
		if t.Failed() {
			t.Logf("serial console:\n%s", tail(plainText(console()), 6000))
		}
	}()
	stop := func() {
		cmd.Process.Kill()
		<-done
	}
	since := func() time.Duration { return time.Since(start).Round(100 * time.Millisecond) }
	answered := false
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			t.Logf("VM ran %s", since())
			switch {
			case ctx.Err() != nil:
				t.Fatalf("the VM did not finish within %s", vmTimeout)
			case err != nil:
				t.Fatalf("qemu: %v", err)
			case r.until != nil:
				t.Fatalf("the VM stopped before the expected screen")
			case r.prompt != "" && !answered:
				t.Fatalf("the VM stopped before it showed %q", r.prompt)
			}
			return console()
		case <-tick.C:
			c := plainText(console())
			switch {
			case r.until != nil && r.until(c):
				t.Logf("VM reached the expected screen in %s", since())
				stop()
				return console()
			case r.prompt != "" && !answered && strings.Contains(c, r.prompt):
				t.Logf("VM showed %q after %s", r.prompt, since())
				io.WriteString(stdin, r.answer)
				answered = true
			case r.prompt == "" && strings.Contains(c, "bty: bty exited with status"):
				// The init's menu waits for a human: bty failed.
				stop()
				t.Fatalf("bty failed in the VM after %s", since())
			}
		}
	}
}

var ansiRE = regexp.MustCompile(`\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-B]|[=>78])`)

// plainText strips terminal escape sequences.
func plainText(s string) string { return ansiRE.ReplaceAllString(s, "") }

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// usbStick are the qemu arguments of a USB disk, the first to boot.
func usbStick(path, format string) []string {
	return []string{"-device", "qemu-xhci", "-drive", "if=none,id=stick,readonly=on,format=" + format + ",file=" + path, "-device", "usb-storage,drive=stick,bootindex=0"}
}

// secureBootFirmware are the qemu arguments of OVMF with Secure Boot
// enforced: Debian's Secure Boot build (it needs SMM and a secure flash;
// Debian 12 links OVMF_CODE_4M.ms.fd to OVMF_CODE_4M.secboot.fd) with
// Microsoft's keys enrolled and Secure Boot on, which trust shim.
func secureBootFirmware(t *testing.T) []string {
	t.Helper()
	const code, vars = "/usr/share/OVMF/OVMF_CODE_4M.ms.fd", "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
	need.File(t, code, "ovmf")
	need.File(t, vars, "ovmf")
	b, err := os.ReadFile(vars)
	if err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(t.TempDir(), "vars.fd")
	writeFile(t, own, b)
	return []string{"-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + code, "-drive", "if=pflash,format=raw,unit=1,file=" + own}
}

// TestVMUSBSecureBoot: the USB image, built at its default size with images
// from a few KiB to 300 MiB, boots from a USB disk under OVMF with Secure
// Boot enforced (shim, GRUB, Debian's signed kernel) and its boot entry
// flashes one of the images on its own BTY_IMAGES partition.
func TestVMUSBSecureBoot(t *testing.T) {
	k := requireVM(t)
	target, decoy, decoyUnchanged := vmDisks(t)
	args := append(secureBootFirmware(t), usbStick(k.usb, "raw")...)
	args = append(args, target.args(1)...)
	args = append(args, decoy.args(2)...)
	console := runVM(t, vmRun{}, args...)
	for _, want := range []string{"Kernel is locked down from EFI Secure Boot", "powering off"} {
		if !strings.Contains(console, want) {
			t.Errorf("the console does not say %q", want)
		}
	}
	checkTarget(t, k, target)
	decoyUnchanged()
}

// TestVMSecureBootRefusesModifiedKernel: the same stick with one byte of the
// kernel flipped (in a qcow2 overlay) does not boot with Secure Boot on:
// GRUB, through shim, refuses the kernel, and bty never starts.
func TestVMSecureBootRefusesModifiedKernel(t *testing.T) {
	k := requireVM(t)
	requireTool(t, "qemu-img", "qemu-io")
	fw := secureBootFirmware(t)
	kernel, err := os.ReadFile(k.kernel)
	if err != nil {
		t.Fatal(err)
	}
	// The kernel is one run of clusters on the EFI system partition, in
	// the stick's first 100 MiB.
	head := make([]byte, 100<<20)
	f, err := os.Open(k.usb)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := f.ReadAt(head, 0)
	f.Close()
	at := bytes.Index(head[:n], kernel[:64<<10])
	if at < 0 || at+len(kernel) > n || !bytes.Equal(head[at:at+len(kernel)], kernel) {
		t.Fatalf("the kernel is not in the stick's first %d bytes", n)
	}
	flip := at + len(kernel)/2
	overlay := filepath.Join(t.TempDir(), "stick.qcow2")
	for _, c := range [][]string{
		{"qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", k.usb, overlay},
		{"qemu-io", "-f", "qcow2", "-c", fmt.Sprintf("write -P %d %d 1", head[flip]^0x01, flip), overlay},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
	target, _, _ := vmDisks(t)
	args := append(fw, usbStick(overlay, "qcow2")...)
	args = append(args, target.args(1)...)
	console := plainText(runVM(t, vmRun{until: func(console string) bool {
		return strings.Contains(console, "bad shim signature")
	}}, args...))
	if strings.Contains(console, "Linux version") || strings.Contains(console, "bty:") {
		t.Errorf("the modified kernel ran")
	}
}

// TestVMUSBDiskBIOS: bty media usb --out LOOP --yes writes a 2 GiB loop
// device that held old data: the stick fills it (BTY_IMAGES spans the disk),
// fsck.exfat finds BTY_IMAGES clean, and SeaBIOS boots it from a USB disk
// (GRUB for i386-pc): its entry flashes a raw image with a run of zeros from
// BTY_IMAGES, which on a disk must be written (old data showing through
// fails the image's digest and the target's bytes).
func TestVMUSBDiskBIOS(t *testing.T) {
	k := requireVM(t)
	requireRoot(t)
	requireTool(t, "losetup", "sgdisk", "fsck.exfat")
	dir := t.TempDir()
	const size = 2 << 30
	back := filepath.Join(dir, "stick")
	f, err := os.Create(back)
	if err != nil {
		t.Fatal(err)
	}
	old := make([]byte, 200<<20)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range old {
		old[i] = byte(rng.Uint32())
	}
	f.WriteAt(old, 0)
	f.WriteAt(old[:1<<20], size-1<<20)
	f.Truncate(size)
	f.Close()
	dev := attachLoop(t, back, 512)
	imgs := t.TempDir()
	writeFile(t, filepath.Join(imgs, "disk.img"), k.raw)
	opts := []string{"--images", imgs, "--append", strings.ReplaceAll(vmStickOptions, vmImage, "disk.img")}
	start := time.Now()
	if err := k.media(append([]string{"usb", "--out", dev, "--yes"}, opts...)...); err != nil {
		t.Fatal(err)
	}
	t.Logf("bty media usb --out %s (2 GiB) took %s", dev, time.Since(start).Round(100*time.Millisecond))
	// Same inputs, same bytes: the stick on the disk is the image file of
	// the disk's size up to the end of its data; what follows on BTY_IMAGES
	// is free space, which keeps the disk's old bytes, then the last MiB.
	file := filepath.Join(dir, "stick.img")
	if err := k.media(append([]string{"usb", "--out", file, "--size", "2G"}, opts...)...); err != nil {
		t.Fatal(err)
	}
	sameStick(t, back, file, size-1<<20)

	if out, err := exec.Command("sgdisk", "-v", dev).CombinedOutput(); err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("sgdisk -v %s: %v\n%s", dev, err, out)
	}
	out, err := exec.Command("sgdisk", "-i", "2", dev).Output()
	var first, last int64
	if _, serr := fmt.Sscanf(regexp.MustCompile(`First sector: \d+`).FindString(string(out)), "First sector: %d", &first); serr != nil || err != nil {
		t.Fatalf("sgdisk -i 2 %s: %v %v\n%s", dev, err, serr, out)
	}
	fmt.Sscanf(regexp.MustCompile(`Last sector: \d+`).FindString(string(out)), "Last sector: %d", &last)
	if (last+1)*512 < size-2<<20 || !strings.Contains(string(out), "BTY_IMAGES") {
		t.Errorf("BTY_IMAGES is sectors %d to %d, want it to reach the last MiB of the 2 GiB disk:\n%s", first, last, out)
	}
	part := attachLoop(t, back, 512, "--read-only", "--offset", fmt.Sprint(first*512), "--sizelimit", fmt.Sprint((last-first+1)*512))
	if out, err := exec.Command("fsck.exfat", "-n", part).CombinedOutput(); err != nil {
		t.Errorf("fsck.exfat -n BTY_IMAGES: %v\n%s", err, out)
	}

	target, decoy, decoyUnchanged := vmDisks(t)
	args := append(usbStick(back, "raw"), target.args(1)...)
	args = append(args, decoy.args(2)...)
	console := runVM(t, vmRun{}, args...)
	if !strings.Contains(console, "powering off") {
		t.Errorf("the console does not say the VM powers off after the flash")
	}
	checkTarget(t, k, target)
	decoyUnchanged()
}

// sameStick fails unless the stick on a disk (its backing file) holds the
// image file's bytes up to the end of the file's data before tail, and from
// tail on.
func sameStick(t *testing.T, disk, file string, tail int64) {
	t.Helper()
	d, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const chunk = 4 << 20
	a, b := make([]byte, chunk), make([]byte, chunk)
	firstDiff, lastData := int64(-1), int64(0) // before tail
	for off := int64(0); ; off += chunk {
		n, err := io.ReadFull(f, a)
		if n == 0 {
			break
		}
		if _, err := io.ReadFull(d, b[:n]); err != nil {
			t.Fatalf("the disk is shorter than the image file: %v", err)
		}
		for i := range n {
			if a[i] == b[i] {
				if a[i] != 0 && off+int64(i) < tail {
					lastData = off + int64(i) + 1
				}
				continue
			}
			if off+int64(i) >= tail {
				t.Fatalf("the stick's last MiB differs from the image file's at byte %d", off+int64(i))
			}
			if firstDiff < 0 {
				firstDiff = off + int64(i)
			}
			if a[i] != 0 {
				lastData = off + int64(i) + 1
			}
		}
		if err != nil {
			break
		}
	}
	if firstDiff >= 0 && firstDiff < lastData {
		t.Errorf("the stick on the disk differs from the image file of its size at byte %d, before the end of its data (%d)", firstDiff, lastData)
	}
}

// TestVMNetbootSecureBoot: UEFI PXE with Secure Boot enforced, iPXE nowhere:
// on a private segment, dnsmasq gives the address and serves the netboot
// directory over TFTP; OVMF fetches shim (bootx64.efi), shim fetches GRUB,
// GRUB fetches grub/grub.cfg, the signed kernel and the initramfs, and the
// live environment, on the NIC that BOOTIF= names, flashes an image from
// an HTTP server on the segment, as grub.cfg's options say.
func TestVMNetbootSecureBoot(t *testing.T) {
	k := requireVM(t)
	netboottest.Require(t, "dnsmasq")
	fw := secureBootFirmware(t)
	lan := netboottest.New(t)
	web := lan.StartHTTP(http.FileServer(http.Dir(filepath.Join(k.dir, "images"))))
	dir := t.TempDir()
	if err := k.media("netboot", "--out", dir, "--append", strings.ReplaceAll(vmStickOptions, "bty.image="+vmImage, "bty.image="+web.Base+"/"+vmImage)); err != nil {
		t.Fatal(err)
	}
	lan.StartDHCP("--enable-tftp", "--tftp-root="+dir,
		"--dhcp-match=set:efi64,option:client-arch,7", "--dhcp-boot=tag:efi64,"+media.ShimName)
	target, decoy, decoyUnchanged := vmDisks(t)
	// OVMF's own PXE client, not the iPXE ROM of the NIC.
	args := append(fw, "-global", "virtio-net-pci.romfile=", "-m", "768M")
	args = append(args, target.args(1)...)
	args = append(args, decoy.args(2)...)
	start := time.Now()
	m := lan.StartVM(netboottest.VM{Name: "sb", MAC: vmMAC, Args: args})
	done := netboottest.WaitFor(vmTimeout, func() bool { return strings.Contains(m.Console(), "reboot: Power down") })
	t.Logf("VM ran %s", time.Since(start).Round(100*time.Millisecond))
	console := m.Console()
	if !done {
		t.Fatalf("the VM did not flash and power off within %s; dnsmasq:\n%s\nconsole:\n%s", vmTimeout, tail(lan.Log("dnsmasq"), 3000), tail(console, 6000))
	}
	for _, want := range []string{"Kernel is locked down from EFI Secure Boot", "BOOTIF=01-" + vmMAC, "powering off"} {
		if !strings.Contains(console, want) {
			t.Errorf("the console does not say %q:\n%s", want, tail(console, 6000))
		}
	}
	for _, f := range []string{media.ShimName, media.GrubName, media.NetbootGrubCfg, media.KernelName, media.InitrdName} {
		if !strings.Contains(lan.Log("dnsmasq"), "sent "+filepath.Join(dir, f)) {
			t.Errorf("dnsmasq did not send %s over TFTP:\n%s", f, tail(lan.Log("dnsmasq"), 3000))
		}
	}
	if !web.Fetched("/" + vmImage) {
		t.Errorf("the live environment did not fetch %s: %v", vmImage, web.Requests())
	}
	checkTarget(t, k, target)
	decoyUnchanged()
}

// TestVMServerFlash: in server mode the guest reaches a plan server on the
// host's loopback through qemu's user network (10.0.2.2), is told by its MAC
// to flash, flashes, reports done and reboots.
func TestVMServerFlash(t *testing.T) {
	k := requireVM(t)
	srv := &pxeServer{image: k.raw, plans: map[string]string{}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	u, _ := url.Parse(ts.URL)
	guestURL := "http://10.0.2.2:" + u.Port()
	srv.plans[vmMAC] = flashPlan(guestURL, vmTarget, sha256Hex(k.raw))
	target, decoy, decoyUnchanged := vmDisks(t)
	args := []string{"-kernel", filepath.Join(k.netboot, "vmlinuz"), "-initrd", filepath.Join(k.netboot, "initrd.img"),
		"-append", "console=ttyS0 panic=-1 quiet bty.server=" + guestURL,
		"-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,romfile=,mac=" + vmMAC}
	args = append(args, target.args(1)...)
	args = append(args, decoy.args(2)...)
	console := runVM(t, vmRun{}, args...)
	if !strings.Contains(console, "rebooting") {
		t.Errorf("the console does not say bty reboots after the flash")
	}
	if got := srv.requests(vmMAC, "plan"); len(got) == 0 {
		t.Errorf("the guest never asked for its plan as %s", vmMAC)
	}
	if got := srv.requests(vmMAC, "status"); len(got) != 1 || !strings.Contains(got[0], `{"status":"done"}`) {
		t.Errorf("status posts = %q, want one done", got)
	}
	checkTarget(t, k, target)
	decoyUnchanged()
}

// TestVMWizard: without instructions on the command line the wizard opens on
// the serial console and lists the image of BTY_IMAGES.
func TestVMWizard(t *testing.T) {
	k := requireVM(t)
	target, _, _ := vmDisks(t)
	args := []string{"-kernel", filepath.Join(k.netboot, "vmlinuz"), "-initrd", filepath.Join(k.netboot, "initrd.img"),
		"-append", "console=ttyS0 panic=-1 quiet"}
	args = append(args, target.args(1)...)
	args = append(args, "-drive", "file="+k.usb+",format=raw,if=none,id=d3,readonly=on", "-device", "virtio-blk-pci,drive=d3")
	runVM(t, vmRun{until: func(console string) bool {
		i := strings.LastIndex(console, "Choose an image")
		return i >= 0 && strings.Contains(console[i:], vmImage) && strings.Contains(console[i:], vmSmallImage) && strings.Contains(console[i:], vmLargeImage)
	}}, args...)
}

// TestVMFailureMenu: when bty fails the init does not panic: it offers a
// shell, bty again, a reboot and a power-off, and p powers off.
func TestVMFailureMenu(t *testing.T) {
	k := requireVM(t)
	target, _, _ := vmDisks(t)
	args := []string{"-kernel", filepath.Join(k.netboot, "vmlinuz"), "-initrd", filepath.Join(k.netboot, "initrd.img"),
		"-append", "console=ttyS0 panic=-1 quiet bty.image=" + vmImage + " bty.disk=serial:NO-SUCH-DISK bty.yes=1 bty.wait=1"}
	args = append(args, target.args(1)...)
	args = append(args, "-drive", "file="+k.usb+",format=raw,if=none,id=d3,readonly=on", "-device", "virtio-blk-pci,drive=d3")
	console := plainText(runVM(t, vmRun{prompt: "[p] power off", answer: "p\n"}, args...))
	for _, want := range []string{"bty exited with status 3", "[s] shell", "[r] reboot", "Power down"} {
		if !strings.Contains(console, want) {
			t.Errorf("the console lacks %q", want)
		}
	}
	if strings.Contains(console, "Kernel panic") {
		t.Errorf("the kernel panicked")
	}
}
