package server

import (
	"fmt"
	"strings"
)

// The iPXE scripts. Their commands are bty-web's (BTY-WEB section 3.4 in the
// project's notes, docs/fleet.md here), with two changes: the live
// environment is bty's own netboot files, so live-boot's boot=live fetch=...
// components tokens are gone, and the initrd gets a name and an initrd= token
// so that an EFI kernel booted by an iPXE without LoadFile2 (Debian 12's
// ipxe is from 2019) finds it.

// cmdline is the live environment's kernel command line before bty.server
// and bty.mac: bty-web's console and driver tokens, less console=ttyS1.
// Linux gives a serial driver one console, the first ttyS listed, so
// bty-web's "console=ttyS1,115200 console=ttyS0,115200" bound the console to
// ttyS1 and the live environment's log never reached COM1 (seen in the VM
// test: the kernel says "console [ttyS1] enabled" and nothing more comes on
// ttyS0). ttyS0 is last, so it is /dev/console.
const cmdline = "console=tty0 console=ttyS0,115200 earlyprintk=ttyS0,115200 plymouth.enable=0 modprobe.blacklist=nouveau,rndis_host nouveau.modeset=0 systemd.gpt_auto=0"

// bootstrapScript chains every machine to its own script, with a fresh boot
// id: a retry of the chain repeats the id and gets the same script.
func bootstrapScript(base, bootID string) string {
	return "#!ipxe\n" +
		"# bty: chain to this machine's script; boot= tells this boot from the next\n" +
		"chain " + base + "/pxe/${mac:hexhyp}?boot=" + bootID + "\n"
}

// liveScript boots the live environment, which asks for its plan. The kernel
// and initrd URLs carry ?mac= so the server sees the kernel fetched; the
// command line carries bty.server and bty.mac.
func (s *Server) liveScript(base, mac, comment string) string {
	k, i := s.opt.Kernel, s.opt.Initrd
	return "#!ipxe\n" +
		"# bty: " + comment + "\n" +
		"set bty-base " + base + "\n" +
		"kernel ${bty-base}/boot/" + k + "?mac=" + mac + " initrd=" + i + " " + cmdline + " bty.server=${bty-base} bty.mac=" + mac + "\n" +
		"initrd --name " + i + " ${bty-base}/boot/" + i + "?mac=" + mac + "\n" +
		"boot\n"
}

// diskScript boots the local disk: exit to the firmware on EFI, the BIOS
// drive (0x80 unless the machine names another) otherwise.
func diskScript(mac, policy, drive string) string {
	if drive == "" {
		drive = "0x80"
	}
	return "#!ipxe\n" +
		"echo bty: " + mac + " boot_mode=" + policy + ", booting local disk (platform=${platform})\n" +
		"sleep 1\n" +
		"iseq ${platform} efi && exit || sanboot --no-describe --drive " + drive + " || exit\n"
}

// unknownScript: a flash mode without an image.
func unknownScript(mac string) string {
	return "#!ipxe\n" +
		"echo no usable bty assignment for " + mac + "; booting local disk (platform=${platform})\n" +
		"sleep 5\n" +
		"iseq ${platform} efi && exit || sanboot --no-describe --drive 0x80 || exit\n"
}

// exitScript: a flash mode whose image or target disk is missing.
func exitScript(mac, mode, ref, why string) string {
	short := "none"
	if ref != "" {
		short = ref[:min(12, len(ref))]
	}
	return "#!ipxe\n" +
		fmt.Sprintf("echo bty: %s boot_mode=%s ref=%s (%s), returning to local boot\n", mac, mode, short, strings.ReplaceAll(why, "_", " ")) +
		"sleep 1\n" +
		"exit\n"
}
