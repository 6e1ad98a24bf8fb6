package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
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
)

// VM tests: the live environment that bty media builds boots a Debian kernel in
// qemu under TCG (no KVM), with virtio disks that carry serials, and flashes.
// They need qemu-system-x86_64, a kernel unpacked by
// media/testdata/get-kernel.sh (into $BTY_VM_KERNEL_DIR, else
// /var/cache/bty-test-kernel), busybox-static and systemd-boot-efi, and ovmf
// for the UEFI test; each skips with a message when something is missing, and
// all skip with -short.

const (
	vmTarget = "VM-TARGET" // serial of the disk the tests flash
	vmDecoy  = "VM-DECOY"  // serial of a disk nothing may touch
	vmMAC    = "52:54:00:12:34:56"
	vmImage  = "disk.img.gz" // the image on BTY_IMAGES that the tests flash
	// Images of a few KiB and of 300 MiB beside vmImage on BTY_IMAGES.
	vmSmallImage = "small.img.xz"
	vmLargeImage = "a-large.img"
	// vmTimeout bounds one boot; under TCG on two cores a boot and flash
	// takes 15 to 40 s.
	vmTimeout = 4 * time.Minute
)

// vmKit is what every VM test boots: netboot files, and a USB image built at
// the default size whose BTY_IMAGES holds vmImage, vmSmallImage and
// vmLargeImage and whose boot entry flashes vmImage to vmTarget.
type vmKit struct {
	dir     string
	netboot string // directory with vmlinuz and initrd.img
	usb     string
	raw     []byte // vmImage decoded: what the target must hold
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
	if _, err := os.Stat(media.DefaultSystemdBoot); err != nil {
		t.Skipf("VM test: %s is missing: apt-get install systemd-boot-efi (.ci/run installs it)", media.DefaultSystemdBoot)
	}
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
	k := &vmKit{dir: filepath.Join(filepath.Dir(btyBin), "vm")}
	imgs := filepath.Join(k.dir, "images")
	if err := os.MkdirAll(imgs, 0o755); err != nil {
		return nil, err
	}
	// The initramfs needs a static bty.
	static := filepath.Join(k.dir, "bty")
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
		{"usb", "--out", k.usb, "--images", imgs, "--append", "console=ttyS0 panic=-1 bty.image=" + vmImage + " bty.disk=serial:" + vmTarget + " bty.yes=1"},
	} {
		args = append([]string{"media"}, append(args, "--kernel", kernel, "--modules", modules)...)
		if out, err := exec.Command(static, args...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("bty %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return k, nil
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

// TestVMNetbootFlash: the netboot files booted with -kernel/-initrd flash the
// image from a BTY_IMAGES disk to the disk named by serial, unattended, and
// power off; the decoy is untouched.
func TestVMNetbootFlash(t *testing.T) {
	k := requireVM(t)
	target, decoy, decoyUnchanged := vmDisks(t)
	args := []string{"-kernel", filepath.Join(k.netboot, "vmlinuz"), "-initrd", filepath.Join(k.netboot, "initrd.img"),
		"-append", "console=ttyS0 panic=-1 quiet bty.image=" + vmImage + " bty.disk=serial:" + vmTarget + " bty.yes=1"}
	args = append(args, target.args(1)...)
	args = append(args, decoy.args(2)...)
	args = append(args, "-drive", "file="+k.usb+",format=raw,if=none,id=d3,readonly=on", "-device", "virtio-blk-pci,drive=d3")
	console := runVM(t, vmRun{}, args...)
	if !strings.Contains(console, "powering off") {
		t.Errorf("the console does not say the VM powers off after the flash")
	}
	checkTarget(t, k, target)
	decoyUnchanged()
}

// TestVMUSBFlash: the USB image, built at its default size with images from
// a few KiB to 300 MiB, boots under OVMF (UEFI) from a USB disk and its boot
// entry flashes one of the images on its own BTY_IMAGES partition.
func TestVMUSBFlash(t *testing.T) {
	k := requireVM(t)
	code, vars := "", ""
	for _, p := range [][2]string{{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"}, {"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"}} {
		if _, err := os.Stat(p[0]); err == nil {
			code, vars = p[0], p[1]
			break
		}
	}
	if code == "" {
		t.Skip("VM test: no OVMF firmware (apt-get install ovmf)")
	}
	b, err := os.ReadFile(vars)
	if err != nil {
		t.Fatal(err)
	}
	varsCopy := filepath.Join(t.TempDir(), "vars.fd")
	writeFile(t, varsCopy, b)
	target, decoy, decoyUnchanged := vmDisks(t)
	args := []string{"-machine", "q35",
		"-drive", "if=pflash,format=raw,readonly=on,file=" + code, "-drive", "if=pflash,format=raw,file=" + varsCopy,
		"-device", "qemu-xhci", "-drive", "if=none,id=stick,format=raw,readonly=on,file=" + k.usb, "-device", "usb-storage,drive=stick,bootindex=0"}
	args = append(args, target.args(1)...)
	args = append(args, decoy.args(2)...)
	console := runVM(t, vmRun{}, args...)
	if !strings.Contains(console, "powering off") {
		t.Errorf("the console does not say the VM powers off after the flash")
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
