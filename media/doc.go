// Package media builds the boot media of the bty live environment: a small
// Linux userland that boots any x86-64 machine into bty.
//
// The live environment is one initramfs (initramfs.go): the static bty binary,
// a static busybox for the init script (init.sh) and a rescue shell, the kernel
// modules for storage, USB, common wired NICs and exFAT/FAT with their
// dependencies (modules.go), and a DHCP hook. It is a cpio "newc" archive
// written here (cpio.go) with sorted entries and zero timestamps, then gzipped,
// so the same inputs give the same bytes.
//
// Two shapes carry it:
//
//	BuildNetboot  kernel + initrd.img in a directory, for PXE/iPXE or qemu -kernel;
//	              with a BootChain also shim, GRUB and grub/grub.cfg for UEFI PXE
//	              with Secure Boot (a TFTP root)
//	BuildUSB      a GPT disk (gpt.go), as an image file or written in place on a
//	              whole disk that it then fills:
//	                protective MBR   GRUB's boot.img (BIOS)
//	                BIOS boot part.  GRUB's i386-pc core image (grub-mkimage)
//	                EFI system part. shim, signed GRUB, EFI/debian/grub.cfg,
//	                (fat.go)         the kernel and the initramfs
//	                BTY_IMAGES       exFAT (exfat.go) holding images
//
// The boot chain (boot.go): UEFI firmware, with Secure Boot on or off, runs
// Debian's shim, shim runs Debian's signed GRUB, GRUB checks the kernel
// through shim; BIOS runs GRUB for i386-pc from the same disk; both read the
// same grub.cfg. The initramfs is not checked by either. Before any work the
// kernel's Authenticode signature is checked against shim's vendor
// certificate (authenticode.go), as shim will at boot.
//
// The disk image is written directly, partition table and file systems
// included: no root, no loop devices, no mounts, no mkfs. On a disk, what
// the file systems leave unwritten is zeroed first (up to BTY_IMAGES' cluster
// heap) and files are written whole, zero blocks and the rest of their last
// cluster included: the disk then holds the image file's bytes, its old data
// showing only in BTY_IMAGES' free clusters.
package media
