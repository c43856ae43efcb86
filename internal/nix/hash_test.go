package nix

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/nix-community/go-nix/pkg/nixbase32"
)

// Vectors from Nix 2.8: nix-hash --type T --to-base32 and nix hash to-sri.
var hashVectors = []struct {
	algo          HashAlgo
	hex, n32, sri string
}{
	{HashMD5, "900150983cd24fb0d6963f7d28e17f72", "3jgzhjhz9zjvbb0kyj7jc500ch", "md5-kAFQmDzST7DWlj99KOF/cg=="},
	{HashSHA1, "a9993e364706816aba3e25717850c26c9cd0d89d", "kpcd173cq987hw957sx6m0868wv3x6d9", "sha1-qZk+NkcGgWq6PiVxeFDCbJzQ2J0="},
	{HashSHA256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s", "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="},
	{HashSHA256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73", "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="},
	{HashSHA512, "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f", "2gs8k559z4rlahfx0y688s49m2vvszylcikrfinm30ly9rak69236nkam5ydvly1ai7xac99vxfc4ii84hawjbk876blyk1jfhkbbyx", "sha512-3a81oZNherrMQXNJriBBMRLm+k6JqX6iCp7u5ktV05ohkpkqJ0/BqDa6PCOj/uu9RU1EI2Q86A4qmslPpUyknw=="},
}

func TestNix32Vectors(t *testing.T) {
	for _, v := range hashVectors {
		digest, _ := hex.DecodeString(v.hex)
		if got := EncodeNix32(digest); got != v.n32 {
			t.Errorf("EncodeNix32(%s) = %s, want %s", v.hex, got, v.n32)
		}
		dec, err := DecodeNix32(v.n32)
		if err != nil || !bytes.Equal(dec, digest) {
			t.Errorf("DecodeNix32(%s) = %x, %v; want %s", v.n32, dec, err, v.hex)
		}
	}
}

// TestNix32MatchesGoNix cross-checks against go-nix's independent implementation.
func TestNix32MatchesGoNix(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n <= 70; n++ {
		for range 20 {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			want := nixbase32.EncodeToString(b)
			got := EncodeNix32(b)
			if got != want {
				t.Fatalf("EncodeNix32(%x) = %q, go-nix says %q", b, got, want)
			}
			dec, err := DecodeNix32(got)
			if err != nil || !bytes.Equal(dec, b) {
				t.Fatalf("DecodeNix32(%q) = %x, %v; want %x", got, dec, err, b)
			}
		}
	}
}

func TestDecodeNix32Errors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c7e", "invalid character 'e'"},
		{"2mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73", "out of range"}, // 260 bits for 256
		{"0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c7", "invalid length 51"},
		{"0", "invalid length 1"},
		{"0M", "invalid character 'M'"},
	} {
		_, err := DecodeNix32(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("DecodeNix32(%q) error = %v, want it to contain %q", tc.in, err, tc.want)
		}
	}
	if b, err := DecodeNix32(""); err != nil || len(b) != 0 {
		t.Errorf("DecodeNix32(\"\") = %x, %v", b, err)
	}
}

func TestParseHashForms(t *testing.T) {
	for _, v := range hashVectors {
		digest, _ := hex.DecodeString(v.hex)
		want := Hash{Algo: v.algo, Digest: digest}
		b64 := v.sri[len(v.algo)+1:]
		for _, in := range []string{
			string(v.algo) + ":" + v.n32,
			string(v.algo) + ":" + v.hex,
			string(v.algo) + ":" + strings.ToUpper(v.hex),
			string(v.algo) + ":" + b64,
			v.sri,
			string(v.algo) + "-" + strings.TrimRight(b64, "="), // Nix stops at '=', so padding is optional
			v.sri + "trailing junk after = is ignored",
		} {
			h, err := ParseHash(in)
			if err != nil {
				t.Errorf("ParseHash(%q): %v", in, err)
				continue
			}
			if !h.Equal(want) {
				t.Errorf("ParseHash(%q) = %x, want %x", in, h.Digest, digest)
			}
		}
		if got := want.String(); got != string(v.algo)+":"+v.n32 {
			t.Errorf("String() = %q", got)
		}
		if got := want.SRI(); got != v.sri {
			t.Errorf("SRI() = %q, want %q", got, v.sri)
		}
		if got := want.Nix32(); got != v.n32 {
			t.Errorf("Nix32() = %q", got)
		}
		if got := want.Base16(); got != v.hex {
			t.Errorf("Base16() = %q", got)
		}
	}
}

func TestParseHashErrors(t *testing.T) {
	const n32 = "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s"
	for _, tc := range []struct{ in, want string }{
		{n32, "has no type prefix (want sha256:…"},
		{"", "has no type prefix"},
		{"SHA256:" + n32, `unknown type "SHA256"`},
		{"blake3:" + n32, `unknown type "blake3"`},
		{"sha256:" + n32[1:], "wrong length 51 for sha256 (want 52 nix32, 64 base-16 or 44 base-64 characters)"},
		{"sha256:" + n32 + "0", "wrong length 53"},
		{"sha256:2b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s", "out of range"},
		{"sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5e", "invalid character 'e'"},
		{"sha256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0", "wrong length 43"}, // ':' + base64 needs the exact 44 characters
		{"sha256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0A", "base-64 digest decodes to 33 bytes, sha256 needs 32"},
		{"sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0AAA", "SRI digest decodes to 34 bytes"},
		{"sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAF", "SRI digest decodes to 30 bytes"},
		{"sha256-ungWv48Bz_pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=", "invalid character '_'"},
		{"sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ag", "invalid base-16"},
		{"sha256-abc:" + n32, `unknown type "sha256-abc"`}, // ':' is looked for first, as in Nix
	} {
		_, err := ParseHash(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseHash(%q) error = %v, want it to contain %q", tc.in, err, tc.want)
		}
	}
}

func TestHashHelpersCopyCompareAndRoundTrip(t *testing.T) {
	sum := sha256.Sum256([]byte("abc"))
	h := SHA256(sum[:])
	if h.String() != "sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s" {
		t.Errorf("SHA256(...).String() = %s", h)
	}
	sum[0] ^= 1
	if h.Digest[0] == sum[0] {
		t.Error("SHA256 did not copy the digest")
	}
	if (Hash{}).String() != "" || !(Hash{}).IsZero() || h.IsZero() {
		t.Error("zero Hash handling")
	}
	if h.Equal(Hash{}) || !h.Equal(SHA256(h.Digest)) {
		t.Error("Equal")
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("SHA256 with a 20-byte digest did not panic")
			}
		}()
		SHA256(make([]byte, 20))
	}()
	if _, err := NewHash(HashSHA1, make([]byte, 32)); err == nil {
		t.Error("NewHash accepted a 32-byte sha1")
	}
	if _, err := NewHash("crc32", make([]byte, 4)); err == nil {
		t.Error("NewHash accepted crc32")
	}
	text, _ := h.MarshalText()
	var back Hash
	if err := back.UnmarshalText(text); err != nil || !back.Equal(h) {
		t.Errorf("text round trip: %v %v", back, err)
	}
	if err := back.UnmarshalText(nil); err != nil || !back.IsZero() {
		t.Error("UnmarshalText(empty) should give the zero Hash")
	}
}
