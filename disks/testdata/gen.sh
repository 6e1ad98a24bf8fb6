#!/bin/sh
# gen.sh writes the fixture trees of this directory (see README.md): for each
# machine a sys/ proc/ dev/ run/ tree that disks.Roots can point at. Symlinks are
# relative, so the trees work from any checkout. Needs GNU realpath.
#
#   sh disks/testdata/gen.sh
set -eu
cd "$(dirname "$0")"

R= # the tree being written

# put FILE VALUE: write a one-line file under the tree.
put() { mkdir -p "$R/$(dirname "$1")"; printf '%s\n' "$2" >"$R/$1"; }

# lnrel LINK TARGET: a relative symlink; both paths are relative to the tree.
lnrel() {
	mkdir -p "$R/$(dirname "$1")"
	ln -sfn "$(realpath -m --relative-to="$R/$(dirname "$1")" "$R/$2")" "$R/$1"
}

# blockdev PATH DEV SECTORS DEVTYPE: a block device at sys/PATH, in /sys/class/block.
blockdev() {
	p=sys/$1 name=$(basename "$1")
	put "$p/dev" "$2"
	put "$p/size" "$3"
	put "$p/ro" 0
	put "$p/uevent" "$(printf 'MAJOR=%s\nMINOR=%s\nDEVNAME=%s\nDEVTYPE=%s' "${2%:*}" "${2#*:}" "$name" "$4")"
	lnrel "sys/class/block/$name" "$p"
}

# disk PATH DEV SECTORS: a whole disk, also in /sys/block, with queue/ defaults
# (512-byte sectors, not rotational, not removable).
disk() {
	blockdev "$1" "$2" "$3" disk
	put "sys/$1/removable" 0
	put "sys/$1/queue/logical_block_size" 512
	put "sys/$1/queue/physical_block_size" 512
	put "sys/$1/queue/rotational" 0
	lnrel "sys/block/$(basename "$1")" "sys/$1"
}

# part DISKPATH NAME DEV NUMBER START SECTORS: a partition of the disk at DISKPATH.
part() {
	blockdev "$1/$2" "$3" "$6" partition
	put "sys/$1/$2/partition" "$4"
	put "sys/$1/$2/start" "$5"
}

# dm NAME DEV SECTORS MAPPER UUID: a device-mapper device.
dm() {
	disk "devices/virtual/block/$1" "$2" "$3"
	put "sys/devices/virtual/block/$1/dm/name" "$4"
	put "sys/devices/virtual/block/$1/dm/uuid" "$5"
}

# at NAME: the sysfs directory of a block device, relative to the tree.
at() { realpath --relative-to="$R" "$R/sys/class/block/$1"; }

# hold LOWER UPPER: UPPER is stacked on LOWER (holders/ and slaves/ links).
hold() {
	lnrel "$(at "$1")/holders/$2" "$(at "$2")"
	lnrel "$(at "$2")/slaves/$1" "$(at "$1")"
}

# udev DEV LINE...: the udev database record of a device.
udev() { d=$1; shift; mkdir -p "$R/run/udev/data"; printf '%s\n' "$@" >"$R/run/udev/data/b$d"; }

# byid LINK NAME: /dev/disk/by-id/LINK -> ../../NAME
byid() { lnrel "dev/disk/by-id/$1" "dev/$2"; }

# mountinfo, swaps: standard input becomes /proc/self/mountinfo, /proc/swaps.
mountinfo() { mkdir -p "$R/proc/self"; cat >"$R/proc/self/mountinfo"; }
swaps() {
	mkdir -p "$R/proc"
	{ printf 'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n'; cat; } >"$R/proc/swaps"
}

fresh() { R=$1; rm -rf "$R"; mkdir -p "$R"; }

# laptop: NVMe system disk (/, /boot/efi, swap partition), SATA data disk, USB
# stick with a mounted BTY_IMAGES partition, a disk under dm-crypt mounted at
# /srv/data, an LVM physical volume, a bound loop device, and what List leaves
# out: an unbound loop, zram (active swap), nbd, an optical drive, dm devices.
fresh laptop
N=devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0
put "sys/$N/model" "Samsung SSD 970 EVO Plus 500GB          "
put "sys/$N/serial" "S4EVNX0R123456K     "
put "sys/$N/firmware_rev" "2B2QEXM7"
disk "$N/nvme0n1" 259:0 976773168
put "sys/$N/nvme0n1/wwid" "eui.0025385b91b0c1a2"
lnrel "sys/$N/nvme0n1/device" "sys/$N"
part "$N/nvme0n1" nvme0n1p1 259:1 1 2048 1048576
part "$N/nvme0n1" nvme0n1p2 259:2 2 1050624 942718976
part "$N/nvme0n1" nvme0n1p3 259:3 3 943769600 33003520
udev 259:0 "S:disk/by-id/nvme-Samsung_SSD_970_EVO_Plus_500GB_S4EVNX0R123456K" \
	"S:disk/by-id/nvme-eui.0025385b91b0c1a2" "E:ID_MODEL=Samsung SSD 970 EVO Plus 500GB" \
	"E:ID_SERIAL_SHORT=S4EVNX0R123456K" "E:ID_WWN=eui.0025385b91b0c1a2" "E:ID_PART_TABLE_TYPE=gpt"
udev 259:1 "E:ID_FS_TYPE=vfat" "E:ID_FS_LABEL=EFI"
udev 259:2 "E:ID_FS_TYPE=ext4"
udev 259:3 "E:ID_FS_TYPE=swap"

A=devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0
put "sys/$A/vendor" "ATA     "
put "sys/$A/model" "WDC WD10EZEX-08W"
put "sys/$A/wwid" "naa.50014EE2B5C3D4E5"
mkdir -p "$R/sys/$A"
printf '\000\200\000\024%s' "     WD-WCC6Y1234567" >"$R/sys/$A/vpd_pg80"
disk "$A/block/sda" 8:0 1953525168
put "sys/$A/block/sda/queue/physical_block_size" 4096
put "sys/$A/block/sda/queue/rotational" 1
lnrel "sys/$A/block/sda/device" "sys/$A"
part "$A/block/sda" sda1 8:1 1 2048 1953523087
byid ata-WDC_WD10EZEX-08WN4A0_WD-WCC6Y1234567 sda
byid ata-WDC_WD10EZEX-08WN4A0_WD-WCC6Y1234567-part1 sda1
byid wwn-0x50014ee2b5c3d4e5 sda

U=devices/pci0000:00/0000:00:14.0/usb2/2-1
put "sys/$U/idVendor" 0781
put "sys/$U/idProduct" 5567
put "sys/$U/serial" 4C530001230101112233
S=$U/2-1:1.0/host2/target2:0:0/2:0:0:0
put "sys/$S/vendor" "SanDisk "
put "sys/$S/model" "Cruzer Blade    "
disk "$S/block/sdb" 8:16 30031872
put "sys/$S/block/sdb/removable" 1
put "sys/$S/block/sdb/queue/rotational" 1
lnrel "sys/$S/block/sdb/device" "sys/$S"
part "$S/block/sdb" sdb1 8:17 1 2048 30029824
udev 8:16 "S:disk/by-id/usb-SanDisk_Cruzer_Blade_4C530001230101112233-0:0" "E:ID_BUS=usb" \
	"E:ID_VENDOR=SanDisk" "E:ID_VENDOR_ENC=SanDisk\x20" "E:ID_MODEL=Cruzer_Blade" \
	"E:ID_MODEL_ENC=Cruzer\x20Blade\x20\x20\x20\x20" "E:ID_SERIAL=SanDisk_Cruzer_Blade_4C530001230101112233-0:0" \
	"E:ID_SERIAL_SHORT=4C530001230101112233"
udev 8:17 "S:disk/by-id/usb-SanDisk_Cruzer_Blade_4C530001230101112233-0:0-part1" "E:ID_FS_TYPE=vfat" \
	"E:ID_FS_LABEL=BTY_IMAGES" "E:ID_FS_LABEL_ENC=BTY_IMAGES"

C=devices/pci0000:00/0000:00:17.0/ata2/host1/target1:0:0/1:0:0:0
put "sys/$C/vendor" "ATA     "
put "sys/$C/model" "ST2000DM008-2FR1"
disk "$C/block/sdc" 8:32 3907029168
put "sys/$C/block/sdc/queue/physical_block_size" 4096
put "sys/$C/block/sdc/queue/rotational" 1
lnrel "sys/$C/block/sdc/device" "sys/$C"
part "$C/block/sdc" sdc1 8:33 1 2048 3907027087
dm dm-0 253:0 3907022991 cryptdata CRYPT-LUKS2-3f6a1c2e9b8d4e0fa1b2c3d4e5f60718-cryptdata
hold sdc1 dm-0
udev 8:32 "S:disk/by-id/ata-ST2000DM008-2FR102_ZFL0ABCD" "S:disk/by-id/wwn-0x5000c500c1234567" \
	"E:ID_ATA=1" "E:ID_BUS=ata" "E:ID_MODEL=ST2000DM008-2FR102" "E:ID_SERIAL_SHORT=ZFL0ABCD" \
	"E:ID_WWN=0x5000c500c1234567"
udev 8:33 "E:ID_FS_TYPE=crypto_LUKS"

D=devices/pci0000:00/0000:00:17.0/ata3/host2/target2:0:0/2:0:0:0
disk "$D/block/sdd" 8:48 500118192
lnrel "sys/$D/block/sdd/device" "sys/$D"
part "$D/block/sdd" sdd1 8:49 1 2048 500116111
dm dm-1 253:1 209715200 vg0-scratch LVM-Xq3b0Z9kVd3Fh1sL2mN4pQ6rT8uW0yA2cE4gI6kM8oQ0sU2wY4aC6eG8iK0mO2qS
hold sdd1 dm-1
udev 8:48 "E:ID_BUS=ata" "E:ID_MODEL=CT500MX500SSD1" "E:ID_SERIAL_SHORT=2117E59AB3C1"
udev 8:49 "E:ID_FS_TYPE=LVM2_member"

disk devices/virtual/block/loop0 7:0 20971520
put sys/devices/virtual/block/loop0/loop/backing_file /home/user/vm.img
disk devices/virtual/block/loop1 7:1 0
disk devices/virtual/block/zram0 252:0 16777216
disk devices/virtual/block/nbd0 43:0 0
disk devices/pci0000:00/0000:00:17.0/ata4/host3/target3:0:0/3:0:0:0/block/sr0 11:0 2097151
put sys/devices/pci0000:00/0000:00:17.0/ata4/host3/target3:0:0/3:0:0:0/block/sr0/removable 1

mountinfo <<'EOF'
22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
24 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
25 22 0:5 / /dev rw,nosuid,relatime shared:2 - devtmpfs udev rw,size=8035468k,nr_inodes=2008867,mode=755
26 22 0:25 / /run rw,nosuid,nodev,noexec,relatime shared:5 - tmpfs tmpfs rw,size=1612788k,mode=755
27 22 259:1 / /boot/efi rw,relatime shared:30 - vfat /dev/nvme0n1p1 rw,fmask=0077,dmask=0077,codepage=437,iocharset=ascii,shortname=mixed,utf8,errors=remount-ro
28 26 8:17 / /run/bty/images rw,nosuid,nodev,relatime shared:40 - vfat /dev/sdb1 rw,fmask=0022,dmask=0022,codepage=437,iocharset=ascii,shortname=mixed,utf8,errors=remount-ro
29 22 253:0 / /srv/data rw,relatime shared:41 - ext4 /dev/mapper/cryptdata rw
30 22 0:46 / /home/user/My\040Files rw,nosuid,nodev,relatime shared:42 - fuse.sshfs user@nas:/files rw,user_id=1000,group_id=1000
EOF
swaps <<'EOF'
/dev/nvme0n1p3                          partition	16501756	0		-2
/dev/zram0                              partition	8388604		0		100
EOF

# sbc: a single-board computer on eMMC, no udev: / and /boot on the eMMC, a swap
# file on /, the eMMC's read-only boot partitions, and a removable SD card.
fresh sbc
M=devices/platform/soc/fe340000.mmc/mmc_host/mmc1/mmc1:0001
put "sys/$M/name" DA4032
put "sys/$M/serial" 0x9a1b2c3d
put "sys/$M/type" MMC
put "sys/$M/manfid" 0x000045
disk "$M/block/mmcblk0" 179:0 61071360
lnrel "sys/$M/block/mmcblk0/device" "sys/$M"
part "$M/block/mmcblk0" mmcblk0p1 179:1 1 8192 524288
part "$M/block/mmcblk0" mmcblk0p2 179:2 2 532480 60538880
for b in 0 1; do
	disk "$M/block/mmcblk0/mmcblk0boot$b" "179:$((8 + 8 * b))" 8192
	put "sys/$M/block/mmcblk0/mmcblk0boot$b/ro" 1
	put "sys/$M/block/mmcblk0/mmcblk0boot$b/force_ro" 1
	lnrel "sys/$M/block/mmcblk0/mmcblk0boot$b/device" "sys/$M"
done
Q=devices/platform/soc/fe320000.mmc/mmc_host/mmc0/mmc0:aaaa
put "sys/$Q/name" SC32G
put "sys/$Q/serial" 0x01234567
put "sys/$Q/type" SD
disk "$Q/block/mmcblk1" 179:24 62333952
put "sys/$Q/block/mmcblk1/removable" 1
lnrel "sys/$Q/block/mmcblk1/device" "sys/$Q"
part "$Q/block/mmcblk1" mmcblk1p1 179:25 1 8192 62325760
mountinfo <<'EOF'
18 1 179:2 / / rw,noatime shared:1 - ext4 /dev/root rw
19 18 0:17 / /proc rw,relatime shared:12 - proc proc rw
20 18 0:5 / /dev rw,relatime shared:2 - devtmpfs devtmpfs rw,size=1855728k,mode=755
21 18 179:1 / /boot rw,relatime shared:30 - vfat /dev/mmcblk0p1 rw,fmask=0022,dmask=0022
EOF
swaps <<'EOF'
/swapfile                               file		1048572		0		-2
EOF

# vm: a qemu guest with virtio disks and no udev (an initramfs): / on the whole
# of vda (like the build machine), a target with a serial, a disk without one, and
# two disks with the same serial (a cloned VM).
fresh vm
i=0
for d in vda:bty-root:41943040 vdb:bty-target:16777216 vdc::2097152 vdd:CLONE-1:2097152 vde:CLONE-1:2097152; do
	name=${d%%:*} rest=${d#*:} serial=${rest%%:*} size=${rest#*:}
	V=devices/pci0000:00/0000:00:0$((4 + i)).0/virtio$((2 + i))
	put "sys/$V/vendor" 0x1af4
	put "sys/$V/device" 0x0002
	disk "$V/block/$name" "254:$((16 * i))" "$size"
	put "sys/$V/block/$name/queue/rotational" 1
	lnrel "sys/$V/block/$name/device" "sys/$V"
	if [ -n "$serial" ]; then
		put "sys/$V/block/$name/serial" "$serial"
		byid "virtio-$serial" "$name"
	fi
	i=$((i + 1))
done
rm "$R/dev/disk/by-id/virtio-CLONE-1"
byid virtio-CLONE-1 vde
mountinfo <<'EOF'
1 1 254:0 / / rw,relatime - ext4 /dev/vda rw
2 1 0:5 / /dev rw,relatime - devtmpfs devtmpfs rw,size=1000000k,mode=755
3 1 0:21 / /proc rw,relatime - proc proc rw
EOF
swaps </dev/null

# live: booted from a USB stick (Debian live-boot: the ISO partition at
# /run/live/medium, the squashfs on loop0, / an overlay), the stick's second
# partition BTY_IMAGES at /run/bty/images, and the internal SATA SSD to flash.
fresh live
A=devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0
put "sys/$A/vendor" "ATA     "
put "sys/$A/model" "Samsung SSD 870 "
disk "$A/block/sda" 8:0 976773168
lnrel "sys/$A/block/sda/device" "sys/$A"
udev 8:0 "S:disk/by-id/ata-Samsung_SSD_870_EVO_500GB_S62ANJ0R712345X" "E:ID_BUS=ata" \
	"E:ID_MODEL=Samsung_SSD_870_EVO_500GB" "E:ID_MODEL_ENC=Samsung\x20SSD\x20870\x20EVO\x20500GB" \
	"E:ID_SERIAL_SHORT=S62ANJ0R712345X" "E:ID_WWN=0x5002538f4123abcd"
U=devices/pci0000:00/0000:00:14.0/usb1/1-2
put "sys/$U/idVendor" 0951
put "sys/$U/serial" 60A44C3FACC1E3B1C9B90F14
S=$U/1-2:1.0/host4/target4:0:0/4:0:0:0
put "sys/$S/vendor" "Kingston"
put "sys/$S/model" "DataTraveler 3.0"
disk "$S/block/sdb" 8:16 60566016
put "sys/$S/block/sdb/removable" 1
lnrel "sys/$S/block/sdb/device" "sys/$S"
part "$S/block/sdb" sdb1 8:17 1 64 1433600
part "$S/block/sdb" sdb2 8:18 2 1433664 59131904
udev 8:16 "E:ID_BUS=usb" "E:ID_VENDOR=Kingston" "E:ID_MODEL=DataTraveler_3.0" \
	"E:ID_SERIAL_SHORT=60A44C3FACC1E3B1C9B90F14" \
	"S:disk/by-id/usb-Kingston_DataTraveler_3.0_60A44C3FACC1E3B1C9B90F14-0:0"
udev 8:17 "E:ID_FS_TYPE=iso9660" "E:ID_FS_LABEL=d-live_12.5.0_st_amd64"
udev 8:18 "E:ID_FS_TYPE=exfat" "E:ID_FS_LABEL=BTY_IMAGES"
disk devices/virtual/block/loop0 7:0 1638400
put sys/devices/virtual/block/loop0/ro 1
put sys/devices/virtual/block/loop0/loop/backing_file /run/live/medium/live/filesystem.squashfs
mountinfo <<'EOF'
20 1 0:26 / / rw,noatime - overlay overlay rw,lowerdir=/run/live/rootfs/filesystem.squashfs/,upperdir=/run/live/overlay/rw,workdir=/run/live/overlay/work
21 20 0:5 / /dev rw,nosuid,relatime - devtmpfs udev rw,size=8035468k,mode=755
22 20 0:22 / /run rw,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw,size=1612788k,mode=755
23 22 8:17 / /run/live/medium ro,noatime - iso9660 /dev/sdb1 ro,nojoliet,check=s,map=n,blocksize=2048
24 22 7:0 / /run/live/rootfs/filesystem.squashfs ro,noatime - squashfs /dev/loop0 ro,errors=continue
25 22 8:18 / /run/bty/images rw,relatime - exfat /dev/sdb2 rw,fmask=0022,dmask=0022
EOF
swaps </dev/null
