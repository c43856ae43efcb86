package nix

import (
	"crypto/ed25519"
	"fmt"
	"strings"
)

// CheckSignature checks that sig has the shape Nix requires of a narinfo Sig
// value: "keyname:base64" where the base64 decodes to a 64-byte ed25519
// signature. Nix fails a substitution outright when a signature by a trusted
// key name has the wrong size, so such a value must never be published.
func CheckSignature(sig string) error {
	name, data, ok := strings.Cut(sig, ":")
	if !ok {
		return fmt.Errorf("no ':' between key name and signature")
	}
	if err := checkKeyName(name); err != nil {
		return err
	}
	raw, err := nixBase64Decode(data)
	if err != nil {
		return fmt.Errorf("signature is not base64: %v", err)
	}
	if len(raw) != ed25519.SignatureSize {
		return fmt.Errorf("signature is %d bytes, want %d", len(raw), ed25519.SignatureSize)
	}
	return nil
}
