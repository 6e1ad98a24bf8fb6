package media

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"debug/pe"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"slices"
)

// The Authenticode check of a kernel: the one the firmware chain makes at
// boot (shim, through GRUB), made at build time so that a stick that would
// stop at "bad shim signature" is never written. A signed PE file carries a
// PKCS#7 SignedData in its certificate table; its content is the digest of
// the file without the checksum, the certificate table's directory entry and
// the table itself (hashed as shim and EDK2 hash it: the headers, the
// sections in file order, then what follows them). The signer's key signs
// that content, and shim trusts the signer when it chains to the vendor
// certificate built into shim (Debian's Secure Boot CA for Debian's shim).
// Like shim, expiry dates are not checked. Only SHA-256 with RSA, what
// distributions sign with, is understood.

var (
	oidSignedData    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidMessageDigest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidSHA256        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidRSA           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidSHA256WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
)

const (
	winCertPKCS7   = 2 // WIN_CERT_TYPE_PKCS_SIGNED_DATA
	peCertTableDir = 4 // IMAGE_DIRECTORY_ENTRY_SECURITY
)

type p7ContentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"tag:0"` // [0] EXPLICIT: Bytes is the content
}

type p7SignedData struct {
	Version          int
	DigestAlgorithms asn1.RawValue
	ContentInfo      p7ContentInfo
	Certificates     asn1.RawValue  `asn1:"optional,tag:0"`
	CRLs             asn1.RawValue  `asn1:"optional,tag:1"`
	SignerInfos      []p7SignerInfo `asn1:"set"`
}

type p7SignerInfo struct {
	Version         int
	IssuerSerial    p7IssuerSerial
	DigestAlgorithm pkix.AlgorithmIdentifier
	AuthAttrs       asn1.RawValue `asn1:"optional,tag:0"`
	SignatureAlg    pkix.AlgorithmIdentifier
	Signature       []byte
	UnauthAttrs     asn1.RawValue `asn1:"optional,tag:1"`
}

// p7IssuerSerial is how a SignerInfo names its certificate.
type p7IssuerSerial struct {
	Issuer asn1.RawValue
	Serial *big.Int
}

type p7Attribute struct {
	Type   asn1.ObjectIdentifier
	Values asn1.RawValue
}

// spcIndirectData is Authenticode's content: the file's digest.
type spcIndirectData struct {
	Data   asn1.RawValue
	Digest struct {
		Algorithm pkix.AlgorithmIdentifier
		Digest    []byte
	}
}

// peLayout is what the digest skips and covers.
type peLayout struct {
	checksum  int // offset of the optional header's CheckSum
	certEntry int // offset of the certificate table's directory entry
	headers   int // SizeOfHeaders
	certOff   int // the certificate table, a file offset; 0 when none
	certSize  int
	sections  [][2]int // raw data ranges, in file order
}

func readPELayout(b []byte) (*peLayout, error) {
	f, err := pe.NewFile(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	opt := int(binary.LittleEndian.Uint32(b[0x3c:])) + 4 + 20
	l := &peLayout{checksum: opt + 64}
	switch h := f.OptionalHeader.(type) {
	case *pe.OptionalHeader64:
		if h.NumberOfRvaAndSizes <= peCertTableDir {
			return l, nil
		}
		l.certEntry, l.headers = opt+112+8*peCertTableDir, int(h.SizeOfHeaders)
		l.certOff, l.certSize = int(h.DataDirectory[peCertTableDir].VirtualAddress), int(h.DataDirectory[peCertTableDir].Size)
	case *pe.OptionalHeader32:
		if h.NumberOfRvaAndSizes <= peCertTableDir {
			return l, nil
		}
		l.certEntry, l.headers = opt+96+8*peCertTableDir, int(h.SizeOfHeaders)
		l.certOff, l.certSize = int(h.DataDirectory[peCertTableDir].VirtualAddress), int(h.DataDirectory[peCertTableDir].Size)
	default:
		return nil, errors.New("no optional header")
	}
	if l.headers > len(b) || l.certEntry+8 > l.headers || l.certOff < 0 || l.certSize < 0 || l.certOff+l.certSize > len(b) {
		return nil, errors.New("headers out of range")
	}
	for _, s := range f.Sections {
		if s.Size > 0 {
			l.sections = append(l.sections, [2]int{int(s.Offset), int(s.Offset + s.Size)})
		}
	}
	slices.SortFunc(l.sections, func(a, b [2]int) int { return a[0] - b[0] })
	for _, s := range l.sections {
		if s[1] > len(b) || s[0] < l.headers {
			return nil, errors.New("a section out of range")
		}
	}
	return l, nil
}

// digest is the Authenticode SHA-256 of the file.
func (l *peLayout) digest(b []byte) []byte {
	h := sha256.New()
	h.Write(b[:l.checksum])
	h.Write(b[l.checksum+4 : l.certEntry])
	h.Write(b[l.certEntry+8 : l.headers])
	sum := l.headers
	for _, s := range l.sections {
		h.Write(b[s[0]:s[1]])
		sum += s[1] - s[0]
	}
	if end := len(b) - l.certSize; end > sum {
		h.Write(b[sum:end])
	}
	return h.Sum(nil)
}

// checkSignedBy reports whether the PE file b (named what) carries an
// Authenticode signature that matches its bytes, by a key that chains to
// vendor. It returns the signer's common name.
func checkSignedBy(b []byte, what string, vendor *x509.Certificate) (string, error) {
	l, err := readPELayout(b)
	if err != nil {
		return "", fmt.Errorf("%s is not an EFI executable (%v)", what, err)
	}
	if l.certSize == 0 {
		return "", fmt.Errorf("%s is not signed for Secure Boot", what)
	}
	want := l.digest(b)
	var last error
	for off := l.certOff; off+8 <= l.certOff+l.certSize; {
		n := int(binary.LittleEndian.Uint32(b[off:]))
		if n < 8 || off+n > l.certOff+l.certSize {
			break
		}
		if binary.LittleEndian.Uint16(b[off+6:]) == winCertPKCS7 {
			signer, err := verifyPKCS7(b[off+8:off+n], want, vendor)
			if err == nil {
				return signer, nil
			}
			last = err
		}
		off += (n + 7) &^ 7
	}
	if last == nil {
		return "", fmt.Errorf("%s is not signed for Secure Boot (no PKCS#7 signature in its certificate table)", what)
	}
	return "", fmt.Errorf("%s: %v", what, last)
}

// verifyPKCS7 checks one Authenticode signature against the file's digest
// and the vendor certificate.
func verifyPKCS7(der, digest []byte, vendor *x509.Certificate) (string, error) {
	var ci p7ContentInfo
	if _, err := asn1.Unmarshal(der, &ci); err != nil || !ci.ContentType.Equal(oidSignedData) {
		return "", errors.New("its signature is not PKCS#7 signed data")
	}
	var sd p7SignedData
	if _, err := asn1.Unmarshal(ci.Content.Bytes, &sd); err != nil {
		return "", fmt.Errorf("its signature does not parse: %v", err)
	}
	var spc spcIndirectData
	var spcRaw asn1.RawValue
	if _, err := asn1.Unmarshal(sd.ContentInfo.Content.Bytes, &spcRaw); err != nil {
		return "", fmt.Errorf("its signature holds no Authenticode digest: %v", err)
	}
	if _, err := asn1.Unmarshal(spcRaw.FullBytes, &spc); err != nil {
		return "", fmt.Errorf("its signature holds no Authenticode digest: %v", err)
	}
	if !spc.Digest.Algorithm.Algorithm.Equal(oidSHA256) {
		return "", fmt.Errorf("its signature uses digest %v, not SHA-256", spc.Digest.Algorithm.Algorithm)
	}
	if !bytes.Equal(spc.Digest.Digest, digest) {
		return "", errors.New("it was modified after it was signed (its digest does not match its signature)")
	}
	certs, err := x509.ParseCertificates(sd.Certificates.Bytes)
	if err != nil {
		return "", fmt.Errorf("the certificates in its signature do not parse: %v", err)
	}
	if len(sd.SignerInfos) != 1 {
		return "", fmt.Errorf("its signature has %d signers, want 1", len(sd.SignerInfos))
	}
	si := sd.SignerInfos[0]
	var signer *x509.Certificate
	for _, c := range certs {
		if bytes.Equal(c.RawIssuer, si.IssuerSerial.Issuer.FullBytes) && c.SerialNumber.Cmp(si.IssuerSerial.Serial) == 0 {
			signer = c
		}
	}
	if signer == nil {
		return "", errors.New("its signature lacks the signer's certificate")
	}
	if !si.DigestAlgorithm.Algorithm.Equal(oidSHA256) || !(si.SignatureAlg.Algorithm.Equal(oidRSA) || si.SignatureAlg.Algorithm.Equal(oidSHA256WithRSA)) {
		return "", errors.New("its signature is not SHA-256 with RSA")
	}
	// The signed attributes carry the digest of the content (its value,
	// without the SEQUENCE's tag and length); the signature covers them
	// as a SET.
	if len(si.AuthAttrs.FullBytes) == 0 {
		return "", errors.New("its signature has no signed attributes")
	}
	var attrs []p7Attribute
	if _, err := asn1.UnmarshalWithParams(si.AuthAttrs.FullBytes, &attrs, "set,tag:0"); err != nil {
		return "", fmt.Errorf("its signed attributes do not parse: %v", err)
	}
	content := sha256.Sum256(spcRaw.Bytes)
	found := false
	for _, a := range attrs {
		var md []byte
		if a.Type.Equal(oidMessageDigest) {
			if _, err := asn1.Unmarshal(a.Values.Bytes, &md); err == nil && bytes.Equal(md, content[:]) {
				found = true
			}
		}
	}
	if !found {
		return "", errors.New("its signed attributes do not match its digest")
	}
	signed := slices.Clone(si.AuthAttrs.FullBytes)
	signed[0] = 0x31 // SET OF, as signed
	if err := signer.CheckSignature(x509.SHA256WithRSA, signed, si.Signature); err != nil {
		return "", fmt.Errorf("its signature does not verify with its signer's key: %v", err)
	}
	name := signer.Subject.CommonName
	// Up the chain to the vendor certificate, checking each signature (as
	// shim's OpenSSL does; x509.Verify would also refuse certificates with
	// extensions it does not know, which the firmware chain accepts).
	c := signer
	for range 8 {
		if bytes.Equal(c.Raw, vendor.Raw) {
			return name, nil
		}
		if bytes.Equal(c.RawIssuer, vendor.RawSubject) && vendor.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil {
			return name, nil
		}
		i := slices.IndexFunc(certs, func(p *x509.Certificate) bool {
			return p != c && bytes.Equal(c.RawIssuer, p.RawSubject) && p.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
		})
		if i < 0 {
			break
		}
		c = certs[i]
	}
	return name, fmt.Errorf("it is signed by %q, which shim does not trust (shim's own certificate is %q)", name, vendor.Subject.CommonName)
}

// shimVendorCert reads the certificate a shim trusts besides the firmware's
// db: its .vendor_cert section holds a table of sizes and offsets, then the
// DER certificate.
func shimVendorCert(b []byte, what string) (*x509.Certificate, error) {
	f, err := pe.NewFile(bytes.NewReader(b))
	if err != nil {
		return nil, inputf("shim %s is not an EFI executable: %v", what, err)
	}
	defer f.Close()
	s := f.Section(".vendor_cert")
	if s == nil {
		return nil, inputf("shim %s has no vendor certificate (.vendor_cert section)", what)
	}
	d, err := s.Data()
	if err != nil || len(d) < 16 {
		return nil, inputf("shim %s: its vendor certificate cannot be read", what)
	}
	n, off := binary.LittleEndian.Uint32(d[0:]), binary.LittleEndian.Uint32(d[8:])
	if uint64(off)+uint64(n) > uint64(len(d)) {
		return nil, inputf("shim %s: its vendor certificate is out of range", what)
	}
	c, err := x509.ParseCertificate(d[off : off+n])
	if err != nil {
		return nil, inputf("shim %s: its vendor certificate does not parse: %v", what, err)
	}
	return c, nil
}
