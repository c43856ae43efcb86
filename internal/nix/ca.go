package nix

import (
	"fmt"
	"strings"
)

// CanonicalCA parses a content address as Nix 2.8's parseContentAddress
// does and returns it rendered as Nix writes it (renderContentAddress):
//
//	text:sha256:<nix32>          (text hashing; only sha256 is allowed)
//	fixed:r:<algo>:<nix32>       (recursive/NAR hashing)
//	fixed:<algo>:<nix32>         (flat file hashing)
//
// The digest may be given in base16, nix32 or base64 (by length, without
// SRI); it is always rendered in nix32. The empty string is not a content
// address (a narinfo "CA: " line means "none").
func CanonicalCA(s string) (string, error) {
	prefix, rest, ok := strings.Cut(s, ":")
	if !ok {
		return "", fmt.Errorf("content address %q is not of the form <prefix>:<rest>", s)
	}
	var method string
	switch prefix {
	case "text":
	case "fixed":
		if r, ok := strings.CutPrefix(rest, "r:"); ok {
			method, rest = "r:", r
		}
	default:
		return "", fmt.Errorf("content address %q has unknown prefix %q (want text or fixed)", s, prefix)
	}
	algoName, digest, ok := strings.Cut(rest, ":")
	if !ok {
		return "", fmt.Errorf("content address %q: hash must be of the form <algo>:<hash>", s)
	}
	algo, ok := parseHashAlgo(algoName)
	if !ok {
		return "", fmt.Errorf("content address %q has unknown hash type %q (want md5, sha1, sha256 or sha512)", s, algoName)
	}
	if prefix == "text" && algo != HashSHA256 {
		return "", fmt.Errorf("content address %q: text content addresses must use sha256, not %s", s, algo)
	}
	h, err := parseHashDigest(s, digest, algo, false)
	if err != nil {
		return "", err
	}
	out := make([]byte, 0, len(prefix)+1+len(method)+len(algo)+1+Nix32EncodedLen(len(h.Digest)))
	out = append(out, prefix...)
	out = append(out, ':')
	out = append(out, method...)
	out = h.appendString(out)
	return string(out), nil
}
