package media

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"bty/gpt"
)

// DefaultCmdline are the kernel options of the USB image's boot entry: kernel
// messages on the first serial port and the screen, bty on the screen (the last
// console= is the one the init's /dev/console is).
const DefaultCmdline = "quiet console=ttyS0,115200 console=tty0"

// ImagesLabel is the label of the images partition, which the init mounts at
// the image root.
const ImagesLabel = "BTY_IMAGES"

// USBOptions say what BuildUSB writes.
type USBOptions struct {
	Kernel    string // the kernel, an x86 bzImage
	Initramfs InitramfsOptions
	// SystemdBoot is the EFI boot loader; "" means DefaultSystemdBoot
	// (Debian's systemd-boot-efi).
	SystemdBoot string
	// Cmdline are the kernel options of the boot entry; "" means
	// DefaultCmdline. Append is added after them (e.g. "bty.image=a.img.xz
	// bty.disk=serial:S bty.yes=1" for an unattended stick).
	Cmdline, Append string
	// Images are image files to copy onto BTY_IMAGES under their base names,
	// each with a <name>.sha256 sidecar computed while copying. A sidecar
	// beside the source file must agree.
	Images []string
	// Catalog, when not nil, is written to BTY_IMAGES as catalog.toml; the
	// wizard offers its images (they need the network).
	Catalog []byte
	// Size is the disk image's size in bytes; 0 means just large enough,
	// with 16 MiB free on BTY_IMAGES. BTY_IMAGES takes all space after the
	// EFI system partition.
	Size int64
	Out  string // the disk image to write; replaced atomically
}

// USB is what BuildUSB wrote.
type USB struct {
	Path      string
	Size      int64
	Initramfs *InitramfsInfo
	Images    []USBImage
}

// USBImage is one image on BTY_IMAGES.
type USBImage struct {
	Name   string
	Size   int64
	SHA256 string
}

const mib = 1 << 20

// BuildUSB writes a GPT disk image that boots the live environment on UEFI
// machines: an EFI system partition with systemd-boot, the kernel and the
// initramfs, then the exFAT BTY_IMAGES partition (basic data type, so Windows
// and macOS mount it too). Disk and partition GUIDs and volume serials are
// derived from the inputs, timestamps are fixed: the same inputs give the same
// bytes.
func BuildUSB(o USBOptions) (*USB, error) {
	sdboot := o.SystemdBoot
	if sdboot == "" {
		sdboot = DefaultSystemdBoot
	}
	if err := checkSystemdBoot(sdboot); err != nil {
		return nil, err
	}
	loader, err := os.ReadFile(sdboot)
	if err != nil {
		return nil, err
	}
	if o.Out == "" {
		return nil, inputf("no output file given")
	}
	kernel, initrd, info, err := buildBoot(o.Kernel, o.Initramfs)
	if err != nil {
		return nil, err
	}
	cmdline := o.Cmdline
	if cmdline == "" {
		cmdline = DefaultCmdline
	}
	if o.Append != "" {
		cmdline += " " + o.Append
	}
	if strings.ContainsAny(cmdline, "\n\r") {
		return nil, inputf("kernel options hold a line break")
	}
	esp := []fatFile{
		{"EFI/BOOT/BOOTX64.EFI", loader},
		{"loader/loader.conf", []byte("timeout 3\ndefault bty.conf\neditor yes\n")},
		{"loader/entries/bty.conf", fmt.Appendf(nil, "title   bty\nlinux   /%s\ninitrd  /%s\noptions %s\n", KernelName, InitrdName, cmdline)},
		{KernelName, kernel},
		{InitrdName, initrd},
	}

	// The images and their sidecars. A sidecar's bytes are known only once
	// its image is copied, which happens first: files are written in name
	// order, and "x" sorts before "x.sha256".
	seed := sha256.New()
	for _, b := range [][]byte{kernel, initrd, loader, []byte(cmdline), o.Catalog} {
		binary.Write(seed, binary.LittleEndian, int64(len(b)))
		seed.Write(b)
	}
	var files []exfatFile
	usb := &USB{Path: o.Out, Initramfs: info, Images: make([]USBImage, len(o.Images))}
	names := map[string]bool{}
	for i, p := range o.Images {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("image %w", err)
		}
		if !fi.Mode().IsRegular() {
			return nil, inputf("image %s is not a regular file", p)
		}
		name := filepath.Base(p)
		if names[name] || name == "catalog.toml" {
			return nil, inputf("image %s: a second file named %s", p, name)
		}
		names[name] = true
		fmt.Fprintf(seed, "%s\x00%d\x00", name, fi.Size())
		want, err := readSidecar(p + ".sha256")
		if err != nil {
			return nil, err
		}
		img := &usb.Images[i]
		*img = USBImage{Name: name, Size: fi.Size()}
		files = append(files, exfatFile{name: name, size: fi.Size(), open: func() (io.ReadCloser, error) {
			f, err := os.Open(p)
			if err != nil {
				return nil, err
			}
			return &hashingReader{f: f, h: sha256.New(), done: func(sum string) error {
				if want != "" && sum != want {
					return inputf("image %s: its sha256 is %s but %s.sha256 says %s", p, sum, filepath.Base(p), want)
				}
				img.SHA256 = sum
				return nil
			}}, nil
		}})
		sidecarSize := int64(64 + 2 + len(name) + 1)
		files = append(files, exfatFile{name: name + ".sha256", size: sidecarSize, open: func() (io.ReadCloser, error) {
			if img.SHA256 == "" {
				return nil, fmt.Errorf("image %s: no digest yet", p)
			}
			return io.NopCloser(strings.NewReader(img.SHA256 + "  " + name + "\n")), nil
		}})
	}
	if o.Catalog != nil {
		files = append(files, exfatFile{name: "catalog.toml", size: int64(len(o.Catalog)), open: func() (io.ReadCloser, error) {
			return io.NopCloser(strings.NewReader(string(o.Catalog))), nil
		}})
	}
	for _, f := range files {
		if err := checkExfatName(f.name); err != nil {
			return nil, err
		}
	}
	id := seed.Sum(nil)

	// Layout, in sectors: the EFI system partition at 1 MiB, BTY_IMAGES after
	// it on the next MiB, the backup GPT in the last MiB.
	espBytes := int64(len(loader)+len(kernel)+len(initrd)) * 2
	espBytes = max(64*mib, (espBytes+mib-1)/mib*mib)
	espStart := uint64(mib / sectorSize)
	espSectors := uint64(espBytes / sectorSize)
	imgStart := espStart + espSectors
	var total uint64
	if o.Size == 0 {
		total = imgStart + exfatSizeFor(files, 16*mib) + mib/sectorSize
	} else {
		if o.Size%sectorSize != 0 {
			return nil, inputf("size %d is not a multiple of %d bytes", o.Size, sectorSize)
		}
		total = uint64(o.Size / sectorSize)
	}
	imgSectors := uint64(0)
	if total > imgStart+mib/sectorSize {
		_, lastUsable := gpt.Usable(sectorSize, total)
		imgSectors = (lastUsable+1)/(mib/sectorSize)*(mib/sectorSize) - imgStart
	}
	// The volume that --size leaves is checked as it will be laid out (its
	// cluster size depends on its size), not as exfatSizeFor would pick it.
	if free, err := exfatFree(imgSectors, files); err != nil || free < 0 {
		need := imgStart + exfatSizeFor(files, 0) + mib/sectorSize
		return nil, inputf("size %d MiB is too small: the boot files and images need %d MiB", o.Size/mib, (need*sectorSize+mib-1)/mib)
	}

	tmp, err := os.CreateTemp(filepath.Dir(o.Out), "."+filepath.Base(o.Out)+".*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	// The file starts as a hole of the full size; what is not written reads
	// as zeros, and stays sparse.
	if err := tmp.Truncate(int64(total) * sectorSize); err != nil {
		return nil, err
	}
	if err := writeFAT32(tmp, int64(espStart)*sectorSize, espSectors, uint32(espStart), "BTY_EFI", serialFrom(id, "esp-serial"), esp); err != nil {
		return nil, err
	}
	if err := writeExFAT(tmp, int64(imgStart)*sectorSize, imgSectors, imgStart, ImagesLabel, serialFrom(id, "images-serial"), files); err != nil {
		return nil, err
	}
	head, tail := gpt.Layout(sectorSize, total, derivedGUID(id, "disk"), []gpt.Partition{
		{Type: guidESP, ID: derivedGUID(id, "esp"), First: espStart, Last: espStart + espSectors - 1, Name: "EFI system partition"},
		{Type: guidBasicData, ID: derivedGUID(id, "images"), First: imgStart, Last: imgStart + imgSectors - 1, Name: ImagesLabel},
	})
	if _, err := tmp.WriteAt(head, 0); err != nil {
		return nil, err
	}
	if _, err := tmp.WriteAt(tail, int64(total)*sectorSize-int64(len(tail))); err != nil {
		return nil, err
	}
	if err := tmp.Sync(); err != nil {
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp.Name(), o.Out); err != nil {
		return nil, err
	}
	usb.Size = int64(total) * sectorSize
	return usb, nil
}

// readSidecar returns the digest in a <file>.sha256 sidecar (first word, 64
// hex digits), "" when there is none.
func readSidecar(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 || len(f[0]) != 64 {
		return "", inputf("%s holds no sha256: fix or remove it", path)
	}
	sum := strings.ToLower(f[0])
	if _, err := hex.DecodeString(sum); err != nil {
		return "", inputf("%s holds no sha256: fix or remove it", path)
	}
	return sum, nil
}

// hashingReader hashes what is read and hands the digest to done at EOF.
type hashingReader struct {
	f    *os.File
	h    hash.Hash
	done func(sum string) error
	err  error
}

func (r *hashingReader) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	r.h.Write(p[:n])
	if err == io.EOF && r.done != nil {
		if derr := r.done(hex.EncodeToString(r.h.Sum(nil))); derr != nil {
			r.err = derr
		}
		r.done = nil
	}
	if r.err != nil {
		return n, r.err
	}
	return n, err
}

func (r *hashingReader) Close() error { return r.f.Close() }

// serialFrom derives a volume serial number from the build's seed.
func serialFrom(seed []byte, label string) uint32 {
	g := derivedGUID(seed, label)
	return binary.LittleEndian.Uint32(g[:4])
}
