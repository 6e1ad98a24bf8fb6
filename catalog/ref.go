package catalog

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Canonical returns the canonical form of a catalog src (docs/catalog.md, canonical refs):
// for http(s), scheme and host lower-cased, user-info dropped, a default port
// dropped, the rest kept exactly as written; for oras, host and repository
// lower-cased, the tag or digest kept as written.
func Canonical(src string) (string, error) {
	scheme, rest, ok := strings.Cut(src, "://")
	if src == "" {
		return "", fmt.Errorf("src is empty: give an http(s):// or oras:// URL")
	}
	if !ok {
		return "", fmt.Errorf("src %q has no scheme: give an http(s):// or oras:// URL", src)
	}
	switch strings.ToLower(scheme) {
	case "http", "https":
		return canonicalHTTP(strings.ToLower(scheme), rest, src)
	case "oras":
		r, err := parseOras(src)
		if err != nil {
			return "", err
		}
		return r.String(), nil
	default:
		return "", fmt.Errorf("src %q: scheme %s:// is not supported: give an http(s):// or oras:// URL", src, scheme)
	}
}

// Ref returns the canonical ref of src: the lower-hex sha256 of Canonical(src).
func Ref(src string) (string, error) {
	c, err := Canonical(src)
	if err != nil {
		return "", err
	}
	return hashString(c), nil
}

func hashString(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func canonicalHTTP(scheme, rest, src string) (string, error) {
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		authority = authority[i+1:]
	}
	host, port := authority, ""
	if strings.HasPrefix(host, "[") {
		// IPv6 literal: [::1]:8080
		i := strings.Index(host, "]")
		if i < 0 {
			return "", fmt.Errorf("src %q: unclosed [ in the host: fix the URL", src)
		}
		host, port = authority[:i+1], authority[i+1:]
		if port != "" && !strings.HasPrefix(port, ":") {
			return "", fmt.Errorf("src %q: junk after the host: fix the URL", src)
		}
		port = strings.TrimPrefix(port, ":")
	} else if i := strings.LastIndex(host, ":"); i >= 0 {
		host, port = authority[:i], authority[i+1:]
	}
	if host == "" || host == "[]" {
		return "", fmt.Errorf("src %q has no host: fix the URL", src)
	}
	for _, c := range port {
		if c < '0' || c > '9' {
			return "", fmt.Errorf("src %q: port %q is not a number: fix the URL", src, port)
		}
	}
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	out := scheme + "://" + strings.ToLower(host)
	if port != "" {
		out += ":" + port
	}
	return out + tail, nil
}

// orasRef is a parsed oras:// reference.
type orasRef struct {
	Host       string // registry host[:port], lower-cased
	Repository string // lower-cased, at least two path segments
	Tag        string // as written, "" when Digest is set
	Digest     string // "sha256:<hex>" as written, "" when Tag is set
}

// String is the canonical form: oras://host/repo:tag or oras://host/repo@digest.
func (r orasRef) String() string {
	return "oras://" + r.Host + "/" + r.Repository + r.suffix()
}

// Reference is the form oras-go parses: host/repo:tag or host/repo@digest.
func (r orasRef) Reference() string {
	return r.Host + "/" + r.Repository + r.suffix()
}

func (r orasRef) suffix() string {
	if r.Digest != "" {
		return "@" + r.Digest
	}
	return ":" + r.Tag
}

// parseOras parses oras://<registry>[:port]/<repo…>(:<tag>|@<digest>).
func parseOras(src string) (orasRef, error) {
	scheme, rest, ok := strings.Cut(src, "://")
	if !ok || !strings.EqualFold(scheme, "oras") {
		return orasRef{}, fmt.Errorf("%q is not an oras:// reference", src)
	}
	var r orasRef
	name := rest
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		name, r.Digest = rest[:i], rest[i+1:]
		algo, hexpart, ok := strings.Cut(r.Digest, ":")
		if !ok || algo == "" || hexpart == "" {
			return orasRef{}, fmt.Errorf("src %q: digest %q is not algorithm:hex: write @sha256:<64 hex>", src, r.Digest)
		}
	} else {
		slash := strings.LastIndex(rest, "/")
		colon := strings.LastIndex(rest, ":")
		if colon <= slash {
			return orasRef{}, fmt.Errorf("src %q has no tag or digest: add :TAG or @sha256:DIGEST", src)
		}
		name, r.Tag = rest[:colon], rest[colon+1:]
		if r.Tag == "" {
			return orasRef{}, fmt.Errorf("src %q has an empty tag: add the tag after the colon", src)
		}
	}
	host, repo, ok := strings.Cut(name, "/")
	if host == "" {
		return orasRef{}, fmt.Errorf("src %q has no registry host: write oras://HOST/OWNER/REPO:TAG", src)
	}
	segments := strings.Split(repo, "/")
	if !ok || len(segments) < 2 {
		return orasRef{}, fmt.Errorf("src %q: the repository needs at least two path segments: write oras://HOST/OWNER/REPO:TAG", src)
	}
	for _, s := range segments {
		if s == "" {
			return orasRef{}, fmt.Errorf("src %q: empty path segment in the repository: fix the reference", src)
		}
	}
	r.Host, r.Repository = strings.ToLower(host), strings.ToLower(repo)
	return r, nil
}
