package nix

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// HashAlgo names a hash algorithm the way Nix spells it.
type HashAlgo string

// The hash algorithms Nix knows.
const (
	HashMD5    HashAlgo = "md5"
	HashSHA1   HashAlgo = "sha1"
	HashSHA256 HashAlgo = "sha256"
	HashSHA512 HashAlgo = "sha512"
)

// Size is the digest length in bytes, or 0 for an unknown algorithm.
func (a HashAlgo) Size() int {
	switch a {
	case HashMD5:
		return 16
	case HashSHA1:
		return 20
	case HashSHA256:
		return 32
	case HashSHA512:
		return 64
	}
	return 0
}

// parseHashAlgo parses a hash algorithm name; Nix is case-sensitive.
func parseHashAlgo(s string) (HashAlgo, bool) {
	switch HashAlgo(s) {
	case HashMD5, HashSHA1, HashSHA256, HashSHA512:
		return HashAlgo(s), true
	}
	return "", false
}

// Hash is a digest together with its algorithm. The zero Hash means "no hash".
type Hash struct {
	Algo   HashAlgo
	Digest []byte
}

// SHA256 wraps a 32-byte SHA-256 digest, e.g. from sha256.Sum256 or a
// hash.Hash's Sum (a copy is kept). It panics if digest is not 32 bytes
// long, which is a programming error.
func SHA256(digest []byte) Hash {
	if len(digest) != 32 {
		panic(fmt.Sprintf("nix.SHA256: digest is %d bytes, want 32", len(digest)))
	}
	return Hash{Algo: HashSHA256, Digest: bytes.Clone(digest)}
}

// NewHash returns a Hash after checking that the digest length fits algo.
func NewHash(algo HashAlgo, digest []byte) (Hash, error) {
	if algo.Size() == 0 {
		return Hash{}, fmt.Errorf("unknown hash algorithm %q", string(algo))
	}
	if len(digest) != algo.Size() {
		return Hash{}, fmt.Errorf("%s digest is %d bytes, want %d", algo, len(digest), algo.Size())
	}
	return Hash{Algo: algo, Digest: bytes.Clone(digest)}, nil
}

// IsZero reports whether h is the zero Hash.
func (h Hash) IsZero() bool { return h.Algo == "" && len(h.Digest) == 0 }

// Equal reports whether h and o have the same algorithm and digest.
func (h Hash) Equal(o Hash) bool { return h.Algo == o.Algo && bytes.Equal(h.Digest, o.Digest) }

// String renders h the way Nix writes it in a narinfo: "sha256:<nix32>".
// The zero Hash renders as "".
func (h Hash) String() string {
	if h.IsZero() {
		return ""
	}
	return string(h.appendString(nil))
}

func (h Hash) appendString(dst []byte) []byte {
	dst = append(dst, h.Algo...)
	dst = append(dst, ':')
	return appendNix32(dst, h.Digest)
}

// Nix32 is the digest alone in nix32, as used in NAR file names.
func (h Hash) Nix32() string { return EncodeNix32(h.Digest) }

// Base16 is the digest alone in lower-case hex.
func (h Hash) Base16() string { return hex.EncodeToString(h.Digest) }

// SRI renders h as a Subresource Integrity string: "sha256-<base64>".
func (h Hash) SRI() string {
	if h.IsZero() {
		return ""
	}
	return string(h.Algo) + "-" + base64.StdEncoding.EncodeToString(h.Digest)
}

// MarshalText implements encoding.TextMarshaler using String.
func (h Hash) MarshalText() ([]byte, error) {
	if h.IsZero() {
		return []byte{}, nil
	}
	return h.appendString(nil), nil
}

// UnmarshalText implements encoding.TextUnmarshaler using ParseHash; empty
// text yields the zero Hash.
func (h *Hash) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*h = Hash{}
		return nil
	}
	v, err := ParseHash(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// ParseHash parses a hash that names its algorithm, with exactly the rules
// of Nix's Hash::parseAnyPrefixed:
//
//   - "<algo>:<digest>" where the digest is base16 (either case), nix32 or
//     base64, chosen by its length (64, 52 or 44 characters for sha256);
//   - "<algo>-<base64>" (SRI), recognised only when the string has no ':'.
//
// Base64 is decoded the lenient Nix way: decoding stops at the first '=',
// unused trailing bits are ignored. A hash without an algorithm prefix is an
// error, as is a digest of the wrong length.
func ParseHash(s string) (Hash, error) {
	rest := s
	sri := false
	sep := strings.IndexByte(rest, ':')
	if sep < 0 {
		sep = strings.IndexByte(rest, '-')
		sri = true
	}
	if sep < 0 {
		return Hash{}, fmt.Errorf("hash %q has no type prefix (want sha256:… or sha256-…)", s)
	}
	algo, ok := parseHashAlgo(rest[:sep])
	if !ok {
		return Hash{}, fmt.Errorf("hash %q has unknown type %q (want md5, sha1, sha256 or sha512)", s, rest[:sep])
	}
	return parseHashDigest(s, rest[sep+1:], algo, sri)
}

// parseHashDigest is Nix's Hash(rest, type, isSRI) constructor; orig is the
// complete string for error messages.
func parseHashDigest(orig, rest string, algo HashAlgo, sri bool) (Hash, error) {
	size := algo.Size()
	base16Len := size * 2
	base32Len := Nix32EncodedLen(size)
	base64Len := (4*size/3 + 3) &^ 3
	digest := make([]byte, size)
	switch {
	case !sri && len(rest) == base16Len:
		if _, err := hex.Decode(digest, []byte(rest)); err != nil {
			return Hash{}, fmt.Errorf("hash %q: invalid base-16 digest: %v", orig, err)
		}
	case !sri && len(rest) == base32Len:
		if err := decodeNix32Into(digest, rest); err != nil {
			return Hash{}, fmt.Errorf("hash %q: invalid nix32 digest: %v", orig, err)
		}
	case sri || len(rest) == base64Len:
		d, err := nixBase64Decode(rest)
		if err != nil {
			return Hash{}, fmt.Errorf("hash %q: %v", orig, err)
		}
		if len(d) != size {
			kind := "base-64"
			if sri {
				kind = "SRI"
			}
			return Hash{}, fmt.Errorf("hash %q: %s digest decodes to %d bytes, %s needs %d", orig, kind, len(d), algo, size)
		}
		digest = d
	default:
		return Hash{}, fmt.Errorf("hash %q has wrong length %d for %s (want %d nix32, %d base-16 or %d base-64 characters)",
			orig, len(rest), algo, base32Len, base16Len, base64Len)
	}
	return Hash{Algo: algo, Digest: digest}, nil
}

// base64Value maps a byte of the standard base64 alphabet to its value, or 0xff.
var base64Value = func() (t [256]byte) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := range t {
		t[i] = 0xff
	}
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// nixBase64Decode decodes base64 like Nix's base64Decode: standard
// alphabet, '\n' skipped, decoding stops at the first '=', incomplete
// trailing bits are dropped.
func nixBase64Decode(s string) ([]byte, error) {
	out := make([]byte, 0, len(s)*3/4)
	var acc, bits uint
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '=' {
			break
		}
		if c == '\n' {
			continue
		}
		d := base64Value[c]
		if d == 0xff {
			return nil, fmt.Errorf("invalid character %q in base-64 string", c)
		}
		acc = (acc<<6 | uint(d)) & 0x3fff
		bits += 6
		if bits >= 8 {
			bits -= 8
			out = append(out, byte(acc>>bits))
		}
	}
	return out, nil
}
