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
	// Chain names the boot loaders: shim and GRUB for UEFI, GRUB for BIOS.
	// The zero value takes Debian's and checks that shim boots the kernel.
	Chain BootChain
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
	// EFI system partition. A disk's size is its own: Size must be 0.
	Size int64
	// Out is the disk image file to write, replaced atomically, or a whole
	// disk (a block device with 512-byte sectors) to write in place, which
	// the stick then fills. A disk is opened exclusively (O_EXCL: the kernel
	// refuses while something on it is mounted).
	Out string
	// Confirm, when set, is called once everything is checked and before
	// anything is written, with the size the stick will have; an error
	// stops BuildUSB there, with nothing written.
	Confirm func(size int64) error
}

// USB is what BuildUSB wrote.
type USB struct {
	Path      string
	Size      int64
	Disk      bool // Path is a disk, written in place
	Initramfs *InitramfsInfo
	Images    []USBImage
	Warnings  []string // e.g. the kernel did not re-read the disk's partition table
}

// USBImage is one image on BTY_IMAGES.
type USBImage struct {
	Name   string
	Size   int64
	SHA256 string
}

const mib = 1 << 20

// BuildUSB writes a GPT disk that boots the live environment on UEFI
// machines, with Secure Boot on or off, and on BIOS machines (boot.go): GRUB's
// boot code in the protective MBR and its core image in a BIOS boot
// partition; an EFI system partition with shim, GRUB, grub.cfg, the kernel
// and the initramfs; then the exFAT BTY_IMAGES partition (basic data type, so
// Windows and macOS mount it too). Disk and partition GUIDs and volume
// serials are derived from the inputs, timestamps are fixed: the same inputs
// give the same bytes.
func BuildUSB(o USBOptions) (*USB, error) {
	if o.Out == "" {
		return nil, inputf("no output file given")
	}
	bf, err := buildBoot(o.Kernel, o.Initramfs, &o.Chain, DefaultGrubEFI)
	if err != nil {
		return nil, err
	}
	core, mbrCode, err := grubPC(o.Chain.GrubPC)
	if err != nil {
		return nil, err
	}
	cmdline, err := kernelOptions(o.Cmdline, o.Append)
	if err != nil {
		return nil, err
	}
	// GRUB's root is the EFI system partition, on UEFI (where the signed
	// GRUB was loaded from) and on BIOS (grubPCPrefix).
	grubCfg := grubConfig(3, "/"+KernelName, "/"+InitrdName, cmdline, "")
	esp := []fatFile{
		{"EFI/BOOT/BOOTX64.EFI", bf.efi.shim},
		{"EFI/BOOT/grubx64.efi", bf.efi.grub},
		{grubCfgPath, grubCfg},
		{KernelName, bf.kernel},
		{InitrdName, bf.initrd},
	}

	usb := &USB{Path: o.Out, Initramfs: bf.info}
	files, id, err := stickFiles(o, usb, [][]byte{bf.kernel, bf.initrd, bf.efi.shim, bf.efi.grub, core, grubCfg, o.Catalog})
	if err != nil {
		return nil, err
	}

	// A disk is opened now, to learn its size, and held until the end.
	var disk *os.File
	if fi, err := os.Stat(o.Out); err == nil && fi.Mode()&fs.ModeDevice != 0 && fi.Mode()&fs.ModeCharDevice == 0 {
		if o.Size != 0 {
			return nil, inputf("%s is a disk: the stick fills it, so give no size", o.Out)
		}
		var size int64
		if disk, size, err = openDisk(o.Out); err != nil {
			return nil, err
		}
		defer disk.Close()
		o.Size, usb.Disk = size/sectorSize*sectorSize, true
	}

	what := fmt.Sprintf("size %d MiB", o.Size/mib)
	if disk != nil {
		what = fmt.Sprintf("disk %s of %d MiB", o.Out, o.Size/mib)
	}
	espBytes := int64(len(bf.efi.shim)+len(bf.efi.grub)+len(bf.kernel)+len(bf.initrd)) * 2
	l, err := layStick(o.Size, espBytes, files, what)
	if err != nil {
		return nil, err
	}
	head, tail := gpt.Layout(sectorSize, l.total, derivedGUID(id, "disk"), []gpt.Partition{
		{Type: guidESP, ID: derivedGUID(id, "esp"), First: l.espStart, Last: l.espStart + l.espSectors - 1, Name: "EFI system partition"},
		{Type: guidBasicData, ID: derivedGUID(id, "images"), First: l.imgStart, Last: l.imgStart + l.imgSectors - 1, Name: ImagesLabel},
		{Type: guidBIOSBoot, ID: derivedGUID(id, "bios"), First: biosBootFirst, Last: biosBootLast, Name: "BIOS boot partition"},
	})
	copy(head, mbrCode)

	if o.Confirm != nil {
		if err := o.Confirm(int64(l.total) * sectorSize); err != nil {
			return nil, err
		}
	}

	w := disk
	if disk != nil {
		// A disk holds what was on it before. The partition table goes first
		// (a failure leaves a disk without one, not a stick that half
		// works), then everything before BTY_IMAGES' cluster heap is zeroed,
		// as the file systems' unwritten parts must read as zeros (and old
		// signatures must not confuse blkid), and so is the last MiB.
		for _, r := range [][2]uint64{{0, l.imgStart + l.heapOffset}, {l.total - mib/sectorSize, l.total}} {
			if err := zeroAt(disk, int64(r[0])*sectorSize, int64(r[1]-r[0])*sectorSize); err != nil {
				return nil, usb.failed(err)
			}
		}
	} else {
		tmp, err := os.CreateTemp(filepath.Dir(o.Out), "."+filepath.Base(o.Out)+".*")
		if err != nil {
			return nil, err
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		// The file starts as a hole of the full size; what is not written
		// reads as zeros, and stays sparse.
		if err := tmp.Truncate(int64(l.total) * sectorSize); err != nil {
			return nil, err
		}
		w = tmp
	}
	if err := writeStick(w, l, id, core, head, tail, esp, files, disk != nil); err != nil {
		return nil, usb.failed(err)
	}
	usb.Size = int64(l.total) * sectorSize
	if disk != nil {
		if err := rereadPartitions(disk); err != nil {
			usb.Warnings = append(usb.Warnings, fmt.Sprintf("the kernel did not re-read the partition table of %s (%v): it shows the old partitions until the stick is unplugged and plugged in again", o.Out, err))
		}
		return usb, nil
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if err := os.Chmod(w.Name(), 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(w.Name(), o.Out); err != nil {
		return nil, err
	}
	return usb, nil
}

// writeStick writes the stick laid out as l onto w, which reads as zeros
// where nothing is written (dense: it holds old data; see writeExFAT): the
// boot code and file systems first, then, after a sync, the backup and the
// primary partition table, and a sync.
func writeStick(w interface {
	io.WriterAt
	Sync() error
}, l stickLayout, id, core, head, tail []byte, esp []fatFile, files []exfatFile, dense bool) error {
	if _, err := w.WriteAt(core, biosBootFirst*sectorSize); err != nil {
		return err
	}
	if err := writeFAT32(w, int64(l.espStart)*sectorSize, l.espSectors, uint32(l.espStart), "BTY_EFI", serialFrom(id, "esp-serial"), esp); err != nil {
		return err
	}
	if err := writeExFAT(w, int64(l.imgStart)*sectorSize, l.imgSectors, l.imgStart, ImagesLabel, serialFrom(id, "images-serial"), files, dense); err != nil {
		return err
	}
	if err := w.Sync(); err != nil {
		return err
	}
	if _, err := w.WriteAt(tail, int64(l.total)*sectorSize-int64(len(tail))); err != nil {
		return err
	}
	if _, err := w.WriteAt(head, 0); err != nil {
		return err
	}
	return w.Sync()
}

// stickLayout is where the stick's parts go, in sectors: GRUB's core image in
// the BIOS boot partition before 1 MiB, the EFI system partition at 1 MiB,
// BTY_IMAGES after it on the next MiB, the backup GPT in the last MiB.
type stickLayout struct {
	espStart, espSectors uint64
	imgStart, imgSectors uint64
	heapOffset           uint64 // BTY_IMAGES' cluster heap, from imgStart
	total                uint64
}

// layStick lays out a stick of size bytes (0: as small as the files allow)
// whose EFI system partition holds espBytes; what names the size in the error
// when the files do not fit.
func layStick(size, espBytes int64, files []exfatFile, what string) (stickLayout, error) {
	var l stickLayout
	espBytes = max(64*mib, (espBytes+mib-1)/mib*mib)
	l.espStart = uint64(mib / sectorSize)
	l.espSectors = uint64(espBytes / sectorSize)
	l.imgStart = l.espStart + l.espSectors
	if size == 0 {
		l.total = l.imgStart + exfatSizeFor(files, 16*mib) + mib/sectorSize
	} else {
		if size%sectorSize != 0 {
			return l, inputf("size %d is not a multiple of %d bytes", size, sectorSize)
		}
		l.total = uint64(size / sectorSize)
	}
	if l.total > l.imgStart+mib/sectorSize {
		_, lastUsable := gpt.Usable(sectorSize, l.total)
		l.imgSectors = (lastUsable+1)/(mib/sectorSize)*(mib/sectorSize) - l.imgStart
	}
	// The volume that --size leaves is checked as it will be laid out (its
	// cluster size depends on its size), not as exfatSizeFor would pick it.
	if free, err := exfatFree(l.imgSectors, files); err != nil || free < 0 {
		need := l.imgStart + exfatSizeFor(files, 0) + mib/sectorSize
		return l, inputf("%s is too small: the boot files and images need %d MiB", what, (need*sectorSize+mib-1)/mib)
	}
	heap, _ := newExfatLayout(l.imgSectors)
	l.heapOffset = uint64(heap.heapOffset)
	return l, nil
}

// stickFiles lists BTY_IMAGES' files: each image, its sidecar and the catalog,
// opened only when written (each image hashed on the way, into usb.Images);
// and the stick's identity: a digest of the boot files and of the images'
// names and sizes, from which its GUIDs and serials are derived.
func stickFiles(o USBOptions, usb *USB, boot [][]byte) ([]exfatFile, []byte, error) {
	// The images and their sidecars. A sidecar's bytes are known only once
	// its image is copied, which happens first: files are written in name
	// order, and "x" sorts before "x.sha256".
	seed := sha256.New()
	for _, b := range boot {
		binary.Write(seed, binary.LittleEndian, int64(len(b)))
		seed.Write(b)
	}
	var files []exfatFile
	usb.Images = make([]USBImage, len(o.Images))
	names := map[string]bool{}
	for i, p := range o.Images {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, nil, fmt.Errorf("image %w", err)
		}
		if !fi.Mode().IsRegular() {
			return nil, nil, inputf("image %s is not a regular file", p)
		}
		name := filepath.Base(p)
		if names[name] || name == "catalog.toml" {
			return nil, nil, inputf("image %s: a second file named %s", p, name)
		}
		names[name] = true
		fmt.Fprintf(seed, "%s\x00%d\x00", name, fi.Size())
		want, err := readSidecar(p + ".sha256")
		if err != nil {
			return nil, nil, err
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
			return nil, nil, err
		}
	}
	return files, seed.Sum(nil), nil
}

// failed says, for a disk, what a failed write left on it.
func (u *USB) failed(err error) error {
	if u.Disk {
		return fmt.Errorf("%w; %s was left without a partition table: write it again", err, u.Path)
	}
	return err
}

// zeroAt writes n zero bytes at off.
func zeroAt(w io.WriterAt, off, n int64) error {
	zeros := make([]byte, min(n, 4*mib))
	for n > 0 {
		k := min(n, int64(len(zeros)))
		if _, err := w.WriteAt(zeros[:k], off); err != nil {
			return err
		}
		off, n = off+k, n-k
	}
	return nil
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
