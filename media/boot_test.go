package media

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// debianKernel returns the kernel and module directory that
// testdata/get-kernel.sh unpacked, or skips.
func debianKernel(t *testing.T) (kernel, modules string) {
	t.Helper()
	dir := os.Getenv("BTY_VM_KERNEL_DIR")
	if dir == "" {
		dir = "/var/cache/bty-test-kernel"
	}
	ks, _ := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	if len(ks) != 1 {
		t.Skipf("no Debian kernel in %s/boot: run sh media/testdata/get-kernel.sh (.ci/run does)", dir)
	}
	return ks[0], dir
}

// TestBuildNetbootSecureBoot: with Debian's signed kernel, shim and GRUB,
// the netboot directory gets the Secure Boot chain for UEFI PXE and a
// grub.cfg that boots the kernel from the TFTP root with the options and
// the boot NIC; a second build from the same inputs gives the same bytes.
func TestBuildNetbootSecureBoot(t *testing.T) {
	needBusybox(t)
	needSecureBootChain(t)
	kernel, modules := debianKernel(t)
	var nb *Netboot
	var builds [][][32]byte
	for range 2 {
		var err error
		nb, err = BuildNetboot(NetbootOptions{Kernel: kernel, Initramfs: InitramfsOptions{Bty: DefaultBusybox, Modules: modules, CACerts: "-"},
			Chain: &BootChain{}, Append: "bty.server=http://10.0.0.5:8080", Out: t.TempDir()})
		if err != nil {
			t.Fatalf("BuildNetboot: %v", err)
		}
		var sums [][32]byte
		for _, p := range []string{nb.Kernel, nb.Initrd, nb.Shim, nb.Grub, nb.GrubCfg} {
			sums = append(sums, fileSum(t, p))
		}
		builds = append(builds, sums)
	}
	if !slices.Equal(builds[0], builds[1]) {
		t.Errorf("two builds from the same inputs differ")
	}
	out := filepath.Dir(nb.Kernel)
	for _, f := range []struct{ got, src string }{{nb.Shim, DefaultShim}, {nb.Grub, DefaultGrubNetEFI}, {nb.Kernel, kernel}} {
		if fileSum(t, f.got) != fileSum(t, f.src) {
			t.Errorf("%s is not a copy of %s", f.got, f.src)
		}
	}
	if nb.Shim != filepath.Join(out, "bootx64.efi") || nb.Grub != filepath.Join(out, "grubx64.efi") || nb.GrubCfg != filepath.Join(out, "grub", "grub.cfg") {
		t.Errorf("BuildNetboot wrote %s, %s, %s; want bootx64.efi, grubx64.efi and grub/grub.cfg in %s", nb.Shim, nb.Grub, nb.GrubCfg, out)
	}
	cfg, _ := os.ReadFile(nb.GrubCfg)
	if want := "\tlinux /vmlinuz " + DefaultCmdline + " bty.server=http://10.0.0.5:8080 BOOTIF=01-${net_default_mac}\n\tinitrd /initrd.img\n"; !strings.Contains(string(cfg), want) {
		t.Errorf("grub.cfg = %q, want it to hold %q", cfg, want)
	}
}

// TestKernelSignature: bty media refuses, before any work, a kernel that
// shim and GRUB would refuse at boot with Secure Boot on, and says what to
// give instead; with UnsignedKernel it takes it.
func TestKernelSignature(t *testing.T) {
	needBusybox(t)
	needSecureBootChain(t)
	kernel, modules := debianKernel(t)
	signed, err := os.ReadFile(kernel)
	if err != nil {
		t.Fatal(err)
	}
	l, err := readPELayout(signed)
	if err != nil || l.certSize == 0 {
		t.Fatalf("%s: %v, certificate table of %d bytes: not Debian's signed kernel", kernel, err, l.certSize)
	}
	dir := t.TempDir()
	variant := func(name string, change func(b []byte) []byte) string {
		b := change(append([]byte(nil), signed...))
		p := filepath.Join(dir, name, filepath.Base(kernel))
		writeFile(t, p, b)
		return p
	}
	for _, tc := range []struct {
		name, kernel, want string
	}{
		{"a byte flipped", variant("flipped", func(b []byte) []byte { b[len(b)/2] ^= 1; return b }), "modified after it was signed"},
		{"no signature", variant("unsigned", func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[l.certEntry:], 0)
			return b[:l.certOff]
		}), "is not signed for Secure Boot"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := BuildNetboot(NetbootOptions{Kernel: tc.kernel, Initramfs: InitramfsOptions{Bty: "/nonexistent", Modules: modules}, Chain: &BootChain{}, Out: t.TempDir()})
			if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "linux-image-amd64") || !strings.Contains(err.Error(), "--secure-boot=false") {
				t.Errorf("BuildNetboot with %s = %v; want ErrInput saying %q, naming linux-image-amd64 and --secure-boot=false", tc.name, err, tc.want)
			}
		})
	}
	// Shim's own signature on shim is Microsoft's: shim's vendor certificate
	// does not vouch for it.
	shim, _ := os.ReadFile(DefaultShim)
	vendor, err := shimVendorCert(shim, DefaultShim)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := checkSignedBy(shim, "shim", vendor); err == nil || !strings.Contains(err.Error(), "which shim does not trust") {
		t.Errorf("checkSignedBy(shim) = %v, want a signer shim does not trust", err)
	}
	if name, err := checkSignedBy(signed, "kernel", vendor); err != nil || !strings.Contains(name, "Debian Secure Boot Signer") {
		t.Errorf("checkSignedBy(Debian's kernel) = %q, %v; want Debian's signer", name, err)
	}
	// Not checked: the build goes on to the next input (here, the missing
	// bty).
	_, err = BuildNetboot(NetbootOptions{Kernel: filepath.Join(dir, "unsigned", filepath.Base(kernel)), Initramfs: InitramfsOptions{Bty: "/nonexistent", Modules: modules}, Chain: &BootChain{UnsignedKernel: true}, Out: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent") {
		t.Errorf("BuildNetboot with an unsigned kernel and UnsignedKernel = %v, want it to get as far as the bty", err)
	}
}

func TestGrubConfig(t *testing.T) {
	got := string(grubConfig(3, "/vmlinuz", "/initrd.img", "quiet bty.catalog=http://h/c.toml?a=1&b=2 x='y'", "BOOTIF=01-$net_default_mac"))
	want := "\tlinux /vmlinuz quiet 'bty.catalog=http://h/c.toml?a=1&b=2' 'x='\\''y'\\''' BOOTIF=01-$net_default_mac\n"
	if !strings.Contains(got, want) || !strings.Contains(got, "set timeout=3\n") {
		t.Errorf("grubConfig = %q, want the timeout and %q", got, want)
	}
}
