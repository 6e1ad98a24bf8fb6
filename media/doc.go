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
//	BuildNetboot  kernel + initrd.img in a directory, for PXE/iPXE or qemu -kernel
//	BuildUSB      a GPT disk image (gpt.go): an EFI system partition (fat.go) with
//	              systemd-boot, the kernel and the initramfs, and an exFAT
//	              partition labelled BTY_IMAGES (exfat.go) holding images
//
// The disk image is written directly, partition table and file systems
// included: no root, no loop devices, no mounts, no mkfs.
package media
