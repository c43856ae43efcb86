package nix

import (
	"fmt"
)

// nix32Alphabet is the digit set of Nix's base32 ("nix32"): 0-9 and a-z
// without e, o, u and t.
const nix32Alphabet = "0123456789abcdfghijklmnpqrsvwxyz"

// nix32Value maps an ASCII byte to its nix32 digit value, or 0xff.
var nix32Value = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i := 0; i < len(nix32Alphabet); i++ {
		t[nix32Alphabet[i]] = byte(i)
	}
	return t
}()

// Nix32EncodedLen is the length of the nix32 encoding of n bytes
// (ceil(n*8/5)): 32 for a 20-byte store path hash, 52 for SHA-256.
func Nix32EncodedLen(n int) int { return (n*8 + 4) / 5 }

// EncodeNix32 encodes b in Nix's base32, exactly as Nix's printHash32 does:
// the last character holds the lowest 5 bits of b[0], i.e. the string is
// the little-endian bit stream of b read from the most significant 5-bit
// group down. It is not RFC 4648 base32.
func EncodeNix32(b []byte) string {
	return string(appendNix32(nil, b))
}

func appendNix32(dst, b []byte) []byte {
	n := Nix32EncodedLen(len(b))
	for k := n - 1; k >= 0; k-- {
		bit := k * 5
		i, j := bit/8, uint(bit%8)
		c := b[i] >> j
		if i+1 < len(b) {
			c |= b[i+1] << (8 - j)
		}
		dst = append(dst, nix32Alphabet[c&0x1f])
	}
	return dst
}

// DecodeNix32 decodes a nix32 string. The length must be the encoding of a
// whole number of bytes, and, like Nix's parser, the bits beyond the last
// byte must be zero (so a SHA-256 in nix32 always starts with 0 or 1).
func DecodeNix32(s string) ([]byte, error) {
	n := len(s) * 5 / 8
	if Nix32EncodedLen(n) != len(s) {
		return nil, fmt.Errorf("nix32 string %q has invalid length %d", s, len(s))
	}
	out := make([]byte, n)
	if err := decodeNix32Into(out, s); err != nil {
		return nil, err
	}
	return out, nil
}

// decodeNix32Into decodes s into out, where len(s) == Nix32EncodedLen(len(out)).
func decodeNix32Into(out []byte, s string) error {
	for k := 0; k < len(s); k++ {
		c := s[len(s)-1-k]
		d := nix32Value[c]
		if d == 0xff {
			return fmt.Errorf("nix32 string %q contains invalid character %q at offset %d (alphabet: %s)",
				s, c, len(s)-1-k, nix32Alphabet)
		}
		bit := k * 5
		i, j := bit/8, uint(bit%8)
		out[i] |= d << j
		carry := d >> (8 - j)
		if i+1 < len(out) {
			out[i+1] |= carry
		} else if carry != 0 {
			return fmt.Errorf("nix32 string %q is out of range: the first character sets bits beyond %d bytes", s, len(out))
		}
	}
	return nil
}

// isNix32 reports whether every byte of s is in the nix32 alphabet.
func isNix32(s string) bool {
	for i := 0; i < len(s); i++ {
		if nix32Value[s[i]] == 0xff {
			return false
		}
	}
	return true
}
