package nix

import (
	"errors"
	"fmt"
	"strings"
)

// StoreDir is the only Nix store directory nixrepo supports.
const StoreDir = "/nix/store"

const (
	// HashPartLen is the length of the nix32 hash at the start of a store
	// path basename (20 bytes of a truncated SHA-256).
	HashPartLen = 32
	// MaxNameLen is Nix's limit on the name part of a store path.
	MaxNameLen = 211
)

// ErrInvalidStorePath is wrapped by every store path syntax error, so
// callers can use errors.Is.
var ErrInvalidStorePath = errors.New("invalid store path")

// StorePath is a syntactically valid Nix store path:
// /nix/store/<32 nix32 chars>-<name>. The zero value means "no path".
// StorePath is comparable; two values are == when they name the same path.
type StorePath struct {
	base string // "<hash>-<name>"
}

// ParseStorePath parses an absolute store path. It must be StoreDir, a
// single '/', and a basename accepted by ParseStorePathBase; nothing is
// cleaned or resolved.
func ParseStorePath(abs string) (StorePath, error) {
	rest, ok := strings.CutPrefix(abs, StoreDir+"/")
	if !ok {
		if crIndex(abs) >= 0 {
			return StorePath{}, storePathError(abs, crMessage)
		}
		if !strings.HasPrefix(abs, "/") {
			return StorePath{}, storePathError(abs, "not an absolute path (want "+StoreDir+"/<hash>-<name>)")
		}
		return StorePath{}, storePathError(abs, "not in the Nix store "+StoreDir)
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		return StorePath{}, storePathError(abs, fmt.Sprintf("has a '/' after the basename %q (want %s/<hash>-<name> and nothing more)", rest[:i], StoreDir))
	}
	if msg := checkBase(rest); msg != "" {
		return StorePath{}, storePathError(abs, msg)
	}
	return StorePath{base: rest}, nil
}

// ParseStorePathBase parses a store path basename "<hash>-<name>" (as used
// in narinfo References and Deriver): 32 characters of the nix32 alphabet,
// a '-', then a name of 1 to 211 characters from [A-Za-z0-9+-._?=] that is
// not ".", ".." and does not start with ".-" or "..-".
//
// Names starting with '.' are accepted as Nix 2.8 and current Nix accept
// them (verified with 2.8; current Nix rejects only the reserved forms
// above). No Nix version checks the '-' after the hash; this does.
func ParseStorePathBase(base string) (StorePath, error) {
	if msg := checkBase(base); msg != "" {
		return StorePath{}, storePathError(base, msg)
	}
	return StorePath{base: base}, nil
}

// MustParseStorePath is ParseStorePath that panics on error; for tests and
// constants.
func MustParseStorePath(abs string) StorePath {
	p, err := ParseStorePath(abs)
	if err != nil {
		panic(err)
	}
	return p
}

// IsHashPart reports whether s is a store path hash part: exactly 32
// characters of the nix32 alphabet.
func IsHashPart(s string) bool { return len(s) == HashPartLen && isNix32(s) }

// HashPart is the 32-character nix32 hash (the narinfo file name without
// ".narinfo").
func (p StorePath) HashPart() string {
	if p.base == "" {
		return ""
	}
	return p.base[:HashPartLen]
}

// Name is the part after "<hash>-".
func (p StorePath) Name() string {
	if p.base == "" {
		return ""
	}
	return p.base[HashPartLen+1:]
}

// Base is "<hash>-<name>".
func (p StorePath) Base() string { return p.base }

// Absolute is "/nix/store/<hash>-<name>" ("" for the zero StorePath).
func (p StorePath) Absolute() string {
	if p.base == "" {
		return ""
	}
	return StoreDir + "/" + p.base
}

// String is Absolute.
func (p StorePath) String() string { return p.Absolute() }

// IsZero reports whether p is the zero StorePath.
func (p StorePath) IsZero() bool { return p.base == "" }

// IsDerivation reports whether the name ends in ".drv".
func (p StorePath) IsDerivation() bool { return strings.HasSuffix(p.base, ".drv") }

const crMessage = "contains a carriage return '\\r' (CRLF line endings? Nix requires \"\\n\" only)"

// crIndex is the index of the first '\r' in s, or -1.
func crIndex(s string) int { return strings.IndexByte(s, '\r') }

func storePathError(path, msg string) error {
	return fmt.Errorf("%w %q: %s", ErrInvalidStorePath, path, msg)
}

// checkBase validates "<hash>-<name>" and returns "" or a description of
// the first rule broken.
func checkBase(base string) string {
	if len(base) < HashPartLen+1 {
		if crIndex(base) >= 0 {
			return crMessage
		}
		if base == "" {
			return "empty"
		}
		return fmt.Sprintf("too short: want <%d-character hash>-<name>, got %d characters", HashPartLen, len(base))
	}
	for i := 0; i < HashPartLen; i++ {
		if c := base[i]; nix32Value[c] == 0xff {
			return fmt.Sprintf("hash part %q contains %s at offset %d (nix32 alphabet is 0-9 and a-z without e, o, u, t)",
				base[:HashPartLen], describeChar(c), i)
		}
	}
	if c := base[HashPartLen]; c != '-' {
		return fmt.Sprintf("want '-' after the %d-character hash part, got %s", HashPartLen, describeChar(c))
	}
	return checkName(base[HashPartLen+1:])
}

// checkName applies Nix 2.8's checkName rules to a store path name.
func checkName(name string) string {
	if name == "" {
		return "name is empty"
	}
	if len(name) > MaxNameLen {
		return fmt.Sprintf("name is %d characters long, the limit is %d", len(name), MaxNameLen)
	}
	// Nix 2.8 accepts any leading period; current Nix refuses ".", ".." and
	// names starting ".-" or "..-" (they would be confusable with path
	// segments). Accept what both accept.
	if name == "." || name == ".." || strings.HasPrefix(name, ".-") || strings.HasPrefix(name, "..-") {
		return fmt.Sprintf("name %q is not allowed (\".\", \"..\" and names starting \".-\" or \"..-\" are reserved)", name)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isNameChar(c) {
			if c == '\r' {
				return "name " + crMessage
			}
			return fmt.Sprintf("name %q contains %s at offset %d (allowed: A-Z a-z 0-9 and + - . _ ? =)", name, describeChar(c), i)
		}
	}
	return ""
}

func isNameChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '+' || c == '-' || c == '.' || c == '_' || c == '?' || c == '='
}

// describeChar names a byte for an error message: 'x', or a Go escape for
// control and non-ASCII bytes.
func describeChar(c byte) string {
	switch {
	case c == '\r':
		return "a carriage return '\\r'"
	case c == '\'':
		return `illegal character "'"`
	case c >= 0x20 && c < 0x7f:
		return "illegal character '" + string(rune(c)) + "'"
	default:
		return fmt.Sprintf("illegal byte 0x%02x", c)
	}
}
