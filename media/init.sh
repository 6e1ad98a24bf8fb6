#!/bin/sh
# /init of the bty live environment (written by `bty media`; busybox sh).
#
# Mounts the kernel file systems, loads the drivers, mounts the partition
# labelled BTY_IMAGES read-only at the image root, brings up DHCP when the
# network is needed, and runs bty on the console. Kernel command line:
#
#   bty.image=IMG bty.disk=DISK bty.yes=1   flash without a prompt, then power off
#   bty.image=IMG bty.disk=DISK             the wizard, at the confirmation
#   bty.after=poweroff|reboot|menu          what follows a successful unattended flash
#   bty.server=URL [bty.mac=MAC]            server-driven mode (MAC: the boot NIC's)
#   bty.catalog=SRC                         the wizard with this catalog
#   bty.wait=SECONDS                        how long to wait for disks (default 30)
#   bty.shell=1                             a shell before bty, for debugging
#   BOOTIF=01-aa-bb-cc-dd-ee-ff             the boot NIC (pxelinux/iPXE style)
#
# This is PID 1: it must never exit, or the kernel panics. After bty it offers
# a shell, a reboot and a power-off.
#
# BTY_LIVE=1 tells bty it runs here, in its live environment: only then does
# the wizard's done screen offer a reboot (after a y/N question). On any other
# machine the wizard never reboots.

/bin/busybox --install -s /bin
export PATH=/bin HOME=/root TERM="${TERM:-linux}"
root=/var/lib/bty/images
export BTY_IMAGE_ROOT=$root BTY_LIVE=1

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /run /tmp "$root"
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
ip link set lo up

say() { echo "bty: $*"; }

# arg NAME: the value of NAME= on the kernel command line (values have no
# spaces; words are not globbed).
cmdline=$(cat /proc/cmdline)
arg() {
	set -f
	for w in $cmdline; do
		case $w in "$1="*) set +f; echo "${w#*=}"; return ;; esac
	done
	set +f
}
image=$(arg bty.image) disk=$(arg bty.disk) yes=$(arg bty.yes)
server=$(arg bty.server) mac=$(arg bty.mac) catalog=$(arg bty.catalog)
after=$(arg bty.after) wait=$(arg bty.wait) bootif=$(arg BOOTIF)
wait=${wait:-30}
case " $cmdline " in *" quiet "*) dmesg -n 1 ;; esac

say "loading drivers"
failed=
while read -r m; do
	insmod "/lib/modules/$m" 2>/dev/null || failed="$failed ${m##*/}"
done </etc/bty/modules
[ -n "$failed" ] && say "could not load:$failed"

# Rescue shell on the second virtual console (Alt-F2).
if [ -c /dev/tty2 ]; then
	(while :; do setsid -c sh -l </dev/tty2 >/dev/tty2 2>&1; sleep 1; done) &
fi

# waitfor SECONDS CMD...: run CMD every half second until it succeeds.
waitfor() {
	n=$(($1 * 2))
	shift
	while [ $n -gt 0 ]; do
		"$@" && return 0
		sleep 0.5
		n=$((n - 1))
	done
	return 1
}
imagesdev() { findfs LABEL=BTY_IMAGES >/dev/null 2>&1; }
hasserial() { bty disks --all 2>/dev/null | grep -qF "$1"; }

unattended=
[ -n "$image" ] && [ -n "$disk" ] && [ "$yes" = 1 ] && unattended=1
# USB sticks and NVMe disks show up a while after their driver loads.
if [ -n "$unattended" ]; then
	case $image in *://*) ;; *) waitfor "$wait" imagesdev ;; esac
elif [ -z "$server" ]; then
	waitfor 5 imagesdev
fi
if dev=$(findfs LABEL=BTY_IMAGES 2>/dev/null); then
	if mount -o ro "$dev" "$root"; then
		say "images: $dev on $root"
	else
		say "cannot mount $dev"
	fi
fi
case $disk in
serial:*) waitfor "$wait" hasserial "${disk#serial:}" || say "no disk with ${disk} yet" ;;
esac
[ -z "$catalog" ] && [ -f "$root/catalog.toml" ] && catalog=$root/catalog.toml

# The network: DHCP on the boot NIC first, then on every other wired NIC.
carrier() { [ "$(cat "/sys/class/net/$1/carrier" 2>/dev/null)" = 1 ]; }
anycarrier() {
	for n; do carrier "$n" && return 0; done
	return 1
}
netif=
netup() {
	want=$(echo "${bootif#01-}" | tr 'A-Z-' 'a-z:')
	[ -n "$mac" ] && want=$(echo "$mac" | tr 'A-Z-' 'a-z:')
	first= rest=
	for d in /sys/class/net/*; do
		[ -e "$d/device" ] || continue
		n=${d##*/}
		ip link set "$n" up
		if [ "$(cat "$d/address")" = "$want" ]; then first=$n; else rest="$rest $n"; fi
	done
	# Only NICs with a link (all of them when none has one yet); a link
	# takes a few seconds to come up.
	waitfor 10 anycarrier $first $rest
	tries=
	for n in $first $rest; do
		carrier "$n" && tries="$tries $n"
	done
	for n in ${tries:-$first $rest}; do
		say "DHCP on $n"
		if udhcpc -i "$n" -n -t 5 -T 2 -s /etc/bty/udhcpc.script -p "/run/udhcpc.$n.pid" >/dev/null 2>&1; then
			netif=$n
			say "$n: $(ip -4 -o addr show dev "$n" | awk '{print $4}')"
			return 0
		fi
	done
	say "no DHCP lease on any NIC"
	return 1
}
# A catalog's images, a URL and a server are on the network; an unattended
# flash of a file on BTY_IMAGES needs none.
needsnet=
[ -n "$server$catalog" ] && needsnet=1
case $image in *://*) needsnet=1 ;; esac
if [ -n "$unattended" ] && { [ -f "$root/$image" ] || [ -f "$image" ]; }; then
	needsnet=
fi
[ -n "$needsnet" ] && netup

[ "$(arg bty.shell)" = 1 ] && setsid cttyhack sh -l

# runbty ARGS...: bty on the console, with the console as its terminal.
runbty() {
	setsid cttyhack sh -c '[ "$(stty size 2>/dev/null)" = "0 0" ] && stty rows 24 cols 80; exec bty "$@"' bty "$@"
}

if [ -n "$server" ] && [ -z "$unattended" ]; then
	[ -z "$mac" ] && [ -n "$netif" ] && mac=$(cat "/sys/class/net/$netif/address")
	set -- --server "$server" ${mac:+--mac "$mac"}
else
	# The wizard, pre-filled with what the command line names; with bty.yes=1
	# and both named, a flash without questions.
	[ "${image#*/}" = "$image" ] && [ -f "$root/$image" ] && image=$root/$image
	set -- ${catalog:+--catalog "$catalog"} ${image:+--image "$image"} ${disk:+--disk "$disk"}
	if [ -n "$unattended" ]; then
		set -- "$@" --yes
		say "flashing $image to $disk"
	fi
fi
runbty "$@"
rc=$?
if [ -n "$unattended" ] && [ $rc = 0 ]; then
	sync
	umount "$root" 2>/dev/null
	case $after in
	reboot) say "done, rebooting"; reboot -f ;;
	menu) ;;
	*) say "done, powering off"; poweroff -f ;;
	esac
fi

while :; do
	echo
	say "bty exited with status $rc."
	echo "  [s] shell   [b] run bty again   [r] reboot   [p] power off"
	if ! read -r a; then
		sleep 60 # no keyboard (console at end of input)
		continue
	fi
	case $a in
	s) setsid cttyhack sh -l ;;
	b) runbty "$@"; rc=$? ;;
	r) sync; umount "$root" 2>/dev/null; reboot -f ;;
	p) sync; umount "$root" 2>/dev/null; poweroff -f ;;
	esac
done
