package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The boot chain. UEFI machines, with Secure Boot on or off, run Debian's
// shim (signed by Microsoft's UEFI CA, which firmware trusts), which runs
// Debian's GRUB (signed by Debian, whom shim trusts), which checks the kernel
// through shim before it boots it. The initramfs is not checked by either.
// BIOS machines run GRUB for i386-pc from the same disk: its boot sector in
// the protective MBR loads its core image from a BIOS boot partition, which
// reads the same grub.cfg from the EFI system partition.

// Host files of the boot chain, and the Debian packages that provide them.
const (
	DefaultShim       = "/usr/lib/shim/shimx64.efi.signed"                      // shim-signed
	DefaultGrubEFI    = "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed"    // grub-efi-amd64-signed
	DefaultGrubNetEFI = "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed" // grub-efi-amd64-signed
	DefaultGrubPC     = "/usr/lib/grub/i386-pc"                                 // grub-pc-bin
	grubMkimage       = "grub-mkimage"                                          // grub-common
)

// BootChain names the boot loaders; "" means the default.
type BootChain struct {
	Shim string // shim for x86-64 UEFI, signed for Secure Boot: DefaultShim
	// GrubEFI is GRUB for x86-64 UEFI, signed by a key shim trusts:
	// DefaultGrubEFI on the stick, DefaultGrubNetEFI (GRUB with TFTP) for
	// netboot.
	GrubEFI string
	GrubPC  string // GRUB's i386-pc directory (boot.img, modules): DefaultGrubPC; the stick only
	// UnsignedKernel takes a kernel that shim would refuse to boot with
	// Secure Boot on (not signed, or not by a key shim trusts): the media
	// then boot only with Secure Boot off.
	UnsignedKernel bool
}

// grubPrefix is where GRUB looks for grub.cfg: Debian's signed GRUB for
// UEFI has /EFI/debian built in (on the partition it was loaded from); the
// core image for BIOS is built with the same directory on the first GPT
// partition of the disk it was loaded from.
const (
	grubCfgPath   = "EFI/debian/grub.cfg"
	grubPCPrefix  = "(,gpt1)/EFI/debian"
	grubPCModules = "biosdisk part_gpt fat normal linux"
)

// The BIOS boot partition holds GRUB's core image: sectors [40, 2047],
// before the EFI system partition, 4 KiB aligned.
const (
	biosBootFirst = 40
	biosBootLast  = mib/sectorSize - 1
)

// readLoader reads a boot loader from the host, naming its Debian package
// when a default one is missing.
func readLoader(path, def, pkg, why string) ([]byte, error) {
	if path == "" {
		path = def
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if path == def {
			return nil, &MissingToolError{Path: path, Package: pkg, Why: why}
		}
		return nil, inputf("%s %s does not exist", why, path)
	}
	if err != nil {
		return nil, err
	}
	if len(b) < 2 || b[0] != 'M' || b[1] != 'Z' {
		return nil, inputf("%s %s is not an EFI executable", why, path)
	}
	return b, nil
}

// efiChain is the UEFI part of the chain, read and checked: shim, GRUB, and
// that the kernel is one shim would boot.
type efiChain struct {
	shim, grub []byte
}

func readEFIChain(c BootChain, defGrub, kernelPath string, kernel []byte) (*efiChain, error) {
	shim, err := readLoader(c.Shim, DefaultShim, "shim-signed", "shim, the Secure Boot first stage")
	if err != nil {
		return nil, err
	}
	grub, err := readLoader(c.GrubEFI, defGrub, "grub-efi-amd64-signed", "GRUB for UEFI")
	if err != nil {
		return nil, err
	}
	if c.UnsignedKernel {
		return &efiChain{shim, grub}, nil
	}
	vendor, err := shimVendorCert(shim, c.Shim)
	if err != nil {
		return nil, err
	}
	if _, err := checkSignedBy(grub, "GRUB "+or(c.GrubEFI, defGrub), vendor); err != nil {
		return nil, inputf("%v: shim would not start it; give the GRUB signed for this shim (Debian's grub-efi-amd64-signed)", err)
	}
	if _, err := checkSignedBy(kernel, "kernel "+kernelPath, vendor); err != nil {
		return nil, inputf("%v: shim and GRUB would refuse it with Secure Boot on; give Debian's signed kernel (package linux-image-amd64), or --secure-boot=false for machines with Secure Boot off", err)
	}
	return &efiChain{shim, grub}, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// grubConfig is the grub.cfg of the live environment: one entry, booted
// after timeout seconds, that loads kernel and initrd (GRUB paths) with the
// kernel options in cmdline. Options are quoted for GRUB's script parser;
// raw is appended as it is (GRUB variables such as ${net_default_mac}).
func grubConfig(timeout int, kernel, initrd, cmdline, raw string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# The bty live environment, written by bty media.\nset default=0\nset timeout=%d\n\nmenuentry 'bty' {\n\tlinux %s", timeout, kernel)
	for _, w := range strings.Fields(cmdline) {
		b.WriteString(" " + grubQuote(w))
	}
	if raw != "" {
		b.WriteString(" " + raw)
	}
	fmt.Fprintf(&b, "\n\tinitrd %s\n}\n", initrd)
	return []byte(b.String())
}

// grubQuote quotes a word for GRUB's script parser when it holds anything
// but letters, digits and . , : / = + @ % _ -.
func grubQuote(w string) string {
	if strings.IndexFunc(w, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".,:/=+@%_-", r))
	}) < 0 {
		return w
	}
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}

// grubPC builds GRUB's i386-pc core image with grub-mkimage (same inputs,
// same bytes) and returns it with the boot sector code for the protective
// MBR, which loads the core image from biosBootFirst.
func grubPC(dir string) (core, mbrCode []byte, err error) {
	dir = or(dir, DefaultGrubPC)
	boot, err := os.ReadFile(filepath.Join(dir, "boot.img"))
	if errors.Is(err, fs.ErrNotExist) {
		if dir == DefaultGrubPC {
			return nil, nil, &MissingToolError{Path: filepath.Join(dir, "boot.img"), Package: "grub-pc-bin", Why: "GRUB for BIOS machines"}
		}
		return nil, nil, inputf("GRUB i386-pc directory %s has no boot.img", dir)
	}
	if err != nil {
		return nil, nil, err
	}
	if len(boot) != sectorSize {
		return nil, nil, inputf("%s is not a boot sector (%d bytes)", filepath.Join(dir, "boot.img"), len(boot))
	}
	mkimage, err := exec.LookPath(grubMkimage)
	if err != nil {
		return nil, nil, &MissingToolError{Path: grubMkimage, Package: "grub-common", Why: "builds GRUB's core image for BIOS machines"}
	}
	tmp, err := os.MkdirTemp("", "bty-grub-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "core.img")
	args := append([]string{"-O", "i386-pc", "-d", dir, "-p", grubPCPrefix, "-o", out}, strings.Fields(grubPCModules)...)
	if msg, err := exec.Command(mkimage, args...).CombinedOutput(); err != nil {
		return nil, nil, inputf("grub-mkimage -d %s: %v: %s", dir, err, strings.TrimSpace(string(msg)))
	}
	core, err = os.ReadFile(out)
	if err != nil {
		return nil, nil, err
	}
	sectors := (len(core) + sectorSize - 1) / sectorSize
	if sectors < 2 || sectors > biosBootLast-biosBootFirst+1 {
		return nil, nil, inputf("GRUB's core image is %d bytes: it does not fit the BIOS boot partition", len(core))
	}
	core = append(core, make([]byte, sectors*sectorSize-len(core))...)
	// As grub-bios-setup does for a disk: the first sector of the core image
	// (diskboot) lists where the rest is, one run right after it (its last
	// 12 bytes: start sector, count, load segment, which grub-mkimage set).
	binary.LittleEndian.PutUint64(core[sectorSize-12:], biosBootFirst+1)
	binary.LittleEndian.PutUint16(core[sectorSize-4:], uint16(sectors-1))
	// boot.img: the core image's first sector (GRUB_BOOT_MACHINE_KERNEL_SECTOR),
	// the drive the BIOS booted from (boot drive 0xff), and no jump over the
	// check that takes a drive number below 0x80 for the first hard disk
	// (nops at GRUB_BOOT_MACHINE_DRIVE_CHECK): what grub-install writes for
	// a USB disk. Only its first 440 bytes go to the MBR, before the disk
	// signature and the partition table.
	mbrCode = append([]byte(nil), boot[:440]...)
	binary.LittleEndian.PutUint64(mbrCode[0x5c:], biosBootFirst)
	mbrCode[0x64] = 0xff
	mbrCode[0x66], mbrCode[0x67] = 0x90, 0x90
	return core, mbrCode, nil
}
