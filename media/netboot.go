package media

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Names of the netboot files, and of the kernel and initramfs on the USB
// image's EFI system partition.
const (
	KernelName = "vmlinuz"
	InitrdName = "initrd.img"
	// ShimName and GrubName are the Secure Boot chain for UEFI PXE: the
	// DHCP boot file is ShimName, which fetches GrubName (the name shim
	// looks for) from the same TFTP directory; GRUB reads grub/grub.cfg
	// from the TFTP root (NetbootGrubCfg).
	ShimName       = "bootx64.efi"
	GrubName       = "grubx64.efi"
	NetbootGrubCfg = "grub/grub.cfg"
)

// NetbootOptions say what BuildNetboot writes.
type NetbootOptions struct {
	Kernel    string // the kernel, an x86 bzImage (Debian's /boot/vmlinuz-<version>)
	Initramfs InitramfsOptions
	// Chain, when not nil, adds the Secure Boot chain for UEFI PXE (shim,
	// GRUB with TFTP and its grub.cfg) and has the kernel checked for it.
	Chain *BootChain
	// Cmdline are the kernel options in grub.cfg; "" means DefaultCmdline.
	// Append is added after them (e.g. "bty.server=URL"), then the boot
	// NIC's MAC as BOOTIF=.
	Cmdline, Append string
	Out             string // directory for the files; created if missing
}

// Netboot is what BuildNetboot wrote.
type Netboot struct {
	Kernel, Initrd string // paths of the files written
	// Shim, Grub and GrubCfg are the Secure Boot chain's files; "" without
	// NetbootOptions.Chain.
	Shim, Grub, GrubCfg string
	Initramfs           *InitramfsInfo
}

// BuildNetboot writes the kernel and the initramfs into o.Out, as a PXE or
// iPXE server (or qemu -kernel/-initrd) boots them, and with o.Chain the
// Secure Boot chain that a TFTP server with o.Out as its root boots.
func BuildNetboot(o NetbootOptions) (*Netboot, error) {
	bf, err := buildBoot(o.Kernel, o.Initramfs, o.Chain, DefaultGrubNetEFI)
	if err != nil {
		return nil, err
	}
	cmdline, err := kernelOptions(o.Cmdline, o.Append)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	nb := &Netboot{Kernel: filepath.Join(o.Out, KernelName), Initrd: filepath.Join(o.Out, InitrdName), Initramfs: bf.info}
	type file struct {
		path string
		data []byte
	}
	files := []file{{nb.Kernel, bf.kernel}, {nb.Initrd, bf.initrd}}
	if bf.efi != nil {
		nb.Shim, nb.Grub, nb.GrubCfg = filepath.Join(o.Out, ShimName), filepath.Join(o.Out, GrubName), filepath.Join(o.Out, NetbootGrubCfg)
		// GRUB's root is the TFTP server it was loaded from (tftp,ADDRESS);
		// net_default_mac is the MAC of the NIC it booted through.
		cfg := grubConfig(0, "/"+KernelName, "/"+InitrdName, cmdline, "BOOTIF=01-${net_default_mac}")
		files = append(files, file{nb.Shim, bf.efi.shim}, file{nb.Grub, bf.efi.grub}, file{nb.GrubCfg, cfg})
		if err := os.MkdirAll(filepath.Dir(nb.GrubCfg), 0o755); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		if err := writeFileAtomic(f.path, f.data); err != nil {
			return nil, err
		}
	}
	return nb, nil
}

// kernelOptions joins the options of a boot entry.
func kernelOptions(cmdline, extra string) (string, error) {
	if cmdline == "" {
		cmdline = DefaultCmdline
	}
	if extra != "" {
		cmdline += " " + extra
	}
	if strings.ContainsAny(cmdline, "\n\r") {
		return "", inputf("kernel options hold a line break")
	}
	return cmdline, nil
}

// bootFiles are what every medium carries.
type bootFiles struct {
	kernel, initrd []byte
	info           *InitramfsInfo
	efi            *efiChain // nil when no chain was asked for
}

// buildBoot reads the kernel, the boot chain when asked for (checking that
// shim would boot the kernel), and builds the initramfs for the kernel. The
// kernel the user named is checked first, then the host tools, before any
// work.
func buildBoot(kernelPath string, opt InitramfsOptions, chain *BootChain, defGrub string) (*bootFiles, error) {
	if kernelPath == "" {
		return nil, inputf("no kernel given")
	}
	v, err := kernelVersion(kernelPath)
	if err != nil {
		return nil, err
	}
	if opt.Busybox == "" {
		opt.Busybox = DefaultBusybox
	}
	if err := checkBusybox(opt.Busybox); err != nil {
		return nil, err
	}
	bf := &bootFiles{}
	if bf.kernel, err = os.ReadFile(kernelPath); err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	if chain != nil {
		if bf.efi, err = readEFIChain(*chain, defGrub, kernelPath, bf.kernel); err != nil {
			return nil, err
		}
	}
	opt.KernelVersion = v
	if bf.initrd, bf.info, err = BuildInitramfs(opt); err != nil {
		return nil, err
	}
	return bf, nil
}

// writeFileAtomic writes data to a temporary file beside path and renames it
// into place, so a reader never sees half a file.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
