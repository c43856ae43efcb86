package nix

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// SecretKey is a named ed25519 signing key, as made by
// `nix-store --generate-binary-cache-key NAME sec pub` or
// `nix key generate-secret --key-name NAME`.
//
// Its String method returns the secret in Nix's key-file format: never log
// a SecretKey with %v or %s.
type SecretKey struct {
	Name string
	Key  ed25519.PrivateKey // 64 bytes: seed ‖ public key
}

// PublicKey is a named ed25519 verification key, as listed in Nix's
// trusted-public-keys setting.
type PublicKey struct {
	Name string
	Key  ed25519.PublicKey // 32 bytes
}

// checkKeyName accepts what Nix can round-trip through its "name:base64"
// format, minus whitespace and control characters (which key files and
// nix.conf lists cannot carry reliably).
func checkKeyName(name string) error {
	if name == "" {
		return errors.New("key name is empty")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == ':' || c <= ' ' || c == 0x7f {
			return fmt.Errorf("key name %q contains %q (':', spaces and control characters are not allowed)", name, c)
		}
	}
	return nil
}

// GenerateKey makes a new key pair named name, reading randomness from
// rand (crypto/rand.Reader when nil).
func GenerateKey(name string, random io.Reader) (SecretKey, error) {
	if err := checkKeyName(name); err != nil {
		return SecretKey{}, err
	}
	if random == nil {
		random = rand.Reader
	}
	_, priv, err := ed25519.GenerateKey(random)
	if err != nil {
		return SecretKey{}, fmt.Errorf("generating key %q: %w", name, err)
	}
	return SecretKey{Name: name, Key: priv}, nil
}

// splitKey splits "name:base64" at the first ':' after trimming
// surrounding whitespace, and decodes the base64 the lenient Nix way.
func splitKey(kind, s string) (string, []byte, error) {
	s = strings.TrimSpace(s)
	name, data, ok := strings.Cut(s, ":")
	if !ok || name == "" || data == "" {
		return "", nil, fmt.Errorf("%s key is corrupt: want \"name:base64\"", kind)
	}
	if err := checkKeyName(name); err != nil {
		return "", nil, fmt.Errorf("%s key: %w", kind, err)
	}
	raw, err := nixBase64Decode(data)
	if err != nil {
		return "", nil, fmt.Errorf("%s key %q: %v", kind, name, err)
	}
	return name, raw, nil
}

// ParseSecretKey parses Nix's secret key format "name:base64(seed ‖ public
// key)" (64 bytes). Surrounding whitespace, such as a final newline in a
// key file, is ignored. The public half must match the seed.
func ParseSecretKey(s string) (SecretKey, error) {
	name, raw, err := splitKey("secret", s)
	if err != nil {
		return SecretKey{}, err
	}
	if len(raw) != ed25519.PrivateKeySize {
		return SecretKey{}, fmt.Errorf("secret key %q is not valid: %d bytes, want %d", name, len(raw), ed25519.PrivateKeySize)
	}
	priv := ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize])
	if !bytes.Equal(priv[ed25519.SeedSize:], raw[ed25519.SeedSize:]) {
		return SecretKey{}, fmt.Errorf("secret key %q is corrupt: its public half does not match its seed", name)
	}
	return SecretKey{Name: name, Key: priv}, nil
}

// ParsePublicKey parses Nix's public key format "name:base64(32 bytes)".
func ParsePublicKey(s string) (PublicKey, error) {
	name, raw, err := splitKey("public", s)
	if err != nil {
		return PublicKey{}, err
	}
	if len(raw) != ed25519.PublicKeySize {
		return PublicKey{}, fmt.Errorf("public key %q is not valid: %d bytes, want %d", name, len(raw), ed25519.PublicKeySize)
	}
	return PublicKey{Name: name, Key: ed25519.PublicKey(raw)}, nil
}

// String is the secret key in Nix's format (no trailing newline), suitable
// for a key file passed to `nix copy --to '…?secret-key=FILE'`.
func (k SecretKey) String() string {
	return k.Name + ":" + base64.StdEncoding.EncodeToString(k.Key)
}

// Public returns the matching public key.
func (k SecretKey) Public() PublicKey {
	return PublicKey{Name: k.Name, Key: ed25519.PublicKey(bytes.Clone(k.Key[ed25519.SeedSize:]))}
}

// SignFingerprint signs fp and returns a narinfo Sig value "name:base64(sig)".
func (k SecretKey) SignFingerprint(fp string) string {
	sig := ed25519.Sign(k.Key, []byte(fp))
	return k.Name + ":" + base64.StdEncoding.EncodeToString(sig)
}

// String is the public key in Nix's format, as used in trusted-public-keys.
func (k PublicKey) String() string {
	return k.Name + ":" + base64.StdEncoding.EncodeToString(k.Key)
}

// VerifyFingerprint reports whether sig ("name:base64") is a valid
// signature of fp by k. A signature by another key name is not.
func (k PublicKey) VerifyFingerprint(fp, sig string) bool {
	name, data, ok := strings.Cut(sig, ":")
	if !ok || name != k.Name || len(k.Key) != ed25519.PublicKeySize {
		return false
	}
	raw, err := nixBase64Decode(data)
	if err != nil || len(raw) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(k.Key, []byte(fp), raw)
}

// Sign adds k's signature of n's fingerprint to n.Sigs, unless that exact
// signature is already there (ed25519 is deterministic, so re-signing
// unchanged content is a no-op).
func (n *NarInfo) Sign(k SecretKey) error {
	if len(k.Key) != ed25519.PrivateKeySize {
		return fmt.Errorf("secret key %q is not valid: %d bytes, want %d", k.Name, len(k.Key), ed25519.PrivateKeySize)
	}
	fp, err := n.Fingerprint()
	if err != nil {
		return err
	}
	sig := k.SignFingerprint(fp)
	if !slices.Contains(n.Sigs, sig) {
		n.Sigs = append(n.Sigs, sig)
	}
	return nil
}

// Verify reports whether at least one of n.Sigs is a valid signature of
// n's fingerprint by a key in keys with the same name. Every signature and
// every key of a matching name is tried, so a stale or bad signature does
// not hide a good one.
func (n *NarInfo) Verify(keys []PublicKey) bool {
	if len(n.Sigs) == 0 || len(keys) == 0 {
		return false
	}
	fp, err := n.Fingerprint()
	if err != nil {
		return false
	}
	for _, sig := range n.Sigs {
		for _, k := range keys {
			if k.VerifyFingerprint(fp, sig) {
				return true
			}
		}
	}
	return false
}
