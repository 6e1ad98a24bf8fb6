package media

import (
	"crypto/sha256"

	"bty/gpt"
)

const sectorSize = 512

// derivedGUID is a version 4 (random-looking) GUID made from a hash of seed
// and label, so a build's GUIDs are unique to its inputs yet reproducible.
func derivedGUID(seed []byte, label string) gpt.GUID {
	h := sha256.Sum256(append(append([]byte{}, seed...), label...))
	var b [16]byte
	copy(b[:], h[:16])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return gpt.GUIDFromBytes(b)
}

// The partition types of the USB stick.
var (
	guidESP       = gpt.MustParseGUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
	guidBasicData = gpt.MustParseGUID("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7")
	guidBIOSBoot  = gpt.MustParseGUID("21686148-6449-6E6F-744E-656564454649")
)
