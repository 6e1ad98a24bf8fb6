package media

import (
	"fmt"
	"os"
	"path/filepath"
)

// Names of the netboot files, and of the kernel and initramfs on the USB
// image's EFI system partition.
const (
	KernelName = "vmlinuz"
	InitrdName = "initrd.img"
)

// NetbootOptions say what BuildNetboot writes.
type NetbootOptions struct {
	Kernel    string // the kernel, an x86 bzImage (Debian's /boot/vmlinuz-<version>)
	Initramfs InitramfsOptions
	Out       string // directory for vmlinuz and initrd.img; created if missing
}

// Netboot is what BuildNetboot wrote.
type Netboot struct {
	Kernel, Initrd string // paths of the files written
	Initramfs      *InitramfsInfo
}

// BuildNetboot writes the kernel and the initramfs into o.Out, as a PXE or
// iPXE server (or qemu -kernel/-initrd) boots them.
func BuildNetboot(o NetbootOptions) (*Netboot, error) {
	kernel, initrd, info, err := buildBoot(o.Kernel, o.Initramfs)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	nb := &Netboot{Kernel: filepath.Join(o.Out, KernelName), Initrd: filepath.Join(o.Out, InitrdName), Initramfs: info}
	if err := writeFileAtomic(nb.Kernel, kernel); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(nb.Initrd, initrd); err != nil {
		return nil, err
	}
	return nb, nil
}

// buildBoot reads the kernel and builds the initramfs for it. The kernel the
// user named is checked first, then the host tool (busybox), before any work.
func buildBoot(kernelPath string, opt InitramfsOptions) (kernel, initrd []byte, info *InitramfsInfo, err error) {
	if kernelPath == "" {
		return nil, nil, nil, inputf("no kernel given")
	}
	v, err := kernelVersion(kernelPath)
	if err != nil {
		return nil, nil, nil, err
	}
	if opt.Busybox == "" {
		opt.Busybox = DefaultBusybox
	}
	if err := checkBusybox(opt.Busybox); err != nil {
		return nil, nil, nil, err
	}
	if kernel, err = os.ReadFile(kernelPath); err != nil {
		return nil, nil, nil, fmt.Errorf("kernel: %w", err)
	}
	opt.KernelVersion = v
	initrd, info, err = BuildInitramfs(opt)
	if err != nil {
		return nil, nil, nil, err
	}
	return kernel, initrd, info, nil
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
