// Package disks owns block-device discovery, disk identity and the safety verdict
// that decides which disk bty may write and which it must never touch.
//
// Flow:
//
//	List(roots)             read /sys/block, /sys/class/block, /proc/self/mountinfo,
//	                        /proc/swaps, the udev database and /dev/disk/by-id into
//	                        []Disk: identity, partitions, holders, mounts, swap
//	disk.Verdict(check)     OK, Confirm (typed confirmation) or Refused, with reasons
//	Resolve(roots, spec)    a DISK argument (/dev path, by-id link, serial:S) to a Disk
//	ResolveTarget(...)      Resolve plus the headless rule (refused is an error)
//	Inventory(disks)        the InventoryDisk JSON of docs/server-protocol.md
//
// Nothing here runs lsblk or udevadm: every source is a file under one of the
// Roots, so tests point the package at fixture trees (testdata/README.md). The
// files are Linux interfaces; elsewhere List fails with errors.ErrUnsupported.
//
// Verdict rules (docs/architecture.md, safety model). Refused, each with its own reason:
//   - the disk holds the running system: /, /boot, /boot/efi, /usr or /var is
//     mounted from it (directly or through dm-crypt, LVM or MD), or active swap
//     (a partition, or a swap file on one of its file systems);
//   - it holds the live medium: /run/live/medium, or Check.ImageRoot;
//   - it or one of its partitions is mounted, or held by another device (dm-crypt,
//     LVM, MD, any device-mapper target);
//   - it is read-only, and eMMC boot and RPMB areas always;
//   - it holds Check.ImagePath (the image file, or is the image device, or is a
//     loop device backed by the image file);
//   - it is smaller than Check.ImageSize, or has no medium (size 0).
//
// Otherwise a disk whose sysfs removable flag is 0 needs typed confirmation
// (Confirm): that is every internal disk, USB enclosures that do not set the flag,
// and loop devices (a loop device is a file, but which file is not ours to judge,
// and typing its name costs little). Only removable disks are OK outright.
//
// Headless mode (--yes, server-driven mode) never prompts: ResolveTarget refuses
// a Refused disk with an error wrapping category.ErrRefused and allows Confirm, because every
// DISK form Resolve accepts names one disk exactly. The writer's O_EXCL open stays
// the kernel's last word on "in use".
package disks
