package nix

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"slices"
	"strings"
	"testing"
)

// Key pair made by `nix-store --generate-binary-cache-key test-1 sec pub`
// (Nix 2.8); it signed realNarInfo's first Sig.
const realSec1 = "test-1:Q9N4ezYx9/0UqGKNJUOTp/YT3whjLwevW8bhCRs+tGbnXQh7WPOwzprCKY3WhtH8aXFgCpW24iz4CKAzAg8+Lg=="

func mustPub(t testing.TB, s string) PublicKey {
	t.Helper()
	k, err := ParsePublicKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustSec(t testing.TB, s string) SecretKey {
	t.Helper()
	k, err := ParseSecretKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeyFormatsParseAndErrorsLeakNoKey(t *testing.T) {
	sk := mustSec(t, realSec1+"\n") // key files may end in a newline
	if sk.Name != "test-1" || sk.String() != realSec1 {
		t.Errorf("ParseSecretKey: %q", sk.String())
	}
	if got := sk.Public().String(); got != realPub1 {
		t.Errorf("Public() = %q, want %q", got, realPub1)
	}
	pk := mustPub(t, "  "+realPub1+"\r\n")
	if pk.String() != realPub1 || !bytes.Equal(pk.Key, sk.Public().Key) {
		t.Error("ParsePublicKey")
	}

	for _, tc := range []struct{ in, want string }{
		{"", "secret key is corrupt"},
		{"test-1", "secret key is corrupt"},
		{":" + realSec1[7:], "secret key is corrupt"},
		{"test-1:", "secret key is corrupt"},
		{"te st:" + realSec1[7:], `key name "te st" contains ' '`},
		{"test-1:" + base64.StdEncoding.EncodeToString(make([]byte, 32)), `secret key "test-1" is not valid: 32 bytes, want 64`},
		{"test-1:Q9N4ezYx9/0UqGKNJUOTp/YT3whjLwevW8bhCRs+tGbnXQh7WPOwzprCKY3WhtH8aXFgCpW24iz4CKAzAg8+LA==", "public half does not match its seed"},
		{"test-1:Q9N4$", `invalid character '$'`},
	} {
		_, err := ParseSecretKey(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseSecretKey(%q) = %v, want error containing %q", tc.in, err, tc.want)
		}
		if err != nil && len(tc.in) > 20 && strings.Contains(err.Error(), tc.in[8:20]) {
			t.Errorf("error %q leaks key material", err)
		}
	}
	for _, in := range []string{"", "x", "x:", realSec1, "x:" + base64.StdEncoding.EncodeToString(make([]byte, 31))} {
		if _, err := ParsePublicKey(in); err == nil {
			t.Errorf("ParsePublicKey(%q) succeeded", in)
		}
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestGenerateKeyFromSeedAndRefusesBadNames(t *testing.T) {
	k, err := GenerateKey("nixrepo-1", zeroReader{})
	if err != nil {
		t.Fatal(err)
	}
	want := ed25519.NewKeyFromSeed(make([]byte, 32))
	if !bytes.Equal(k.Key, want) || k.Name != "nixrepo-1" {
		t.Errorf("GenerateKey = %v", k)
	}
	back := mustSec(t, k.String())
	if back.Name != k.Name || !bytes.Equal(back.Key, k.Key) {
		t.Error("String/ParseSecretKey round trip")
	}
	k2, err := GenerateKey("x", nil)
	if err != nil || len(k2.Key) != 64 {
		t.Errorf("GenerateKey(nil rand): %v", err)
	}
	for _, bad := range []string{"", "a:b", "a b", "a\n"} {
		if _, err := GenerateKey(bad, nil); err == nil {
			t.Errorf("GenerateKey(%q) succeeded", bad)
		}
	}
}

func TestSignAndVerify(t *testing.T) {
	n, err := ParseNarInfo([]byte(realNarInfo))
	if err != nil {
		t.Fatal(err)
	}
	pub1, pub2 := mustPub(t, realPub1), mustPub(t, realPub2)
	if !n.Verify([]PublicKey{pub1}) || !n.Verify([]PublicKey{pub2}) || !n.Verify([]PublicKey{pub2, pub1}) {
		t.Error("Nix's signatures do not verify")
	}
	if n.Verify(nil) {
		t.Error("Verify without keys")
	}
	// Same public key under another name: Nix matches by name only.
	if n.Verify([]PublicKey{{Name: "other", Key: pub1.Key}}) {
		t.Error("Verify matched a key with a different name")
	}

	// Our signature with Nix's key is byte-for-byte Nix's.
	sk := mustSec(t, realSec1)
	fresh := *n
	fresh.Sigs = nil
	if err := fresh.Sign(sk); err != nil {
		t.Fatal(err)
	}
	if len(fresh.Sigs) != 1 || fresh.Sigs[0] != n.Sigs[0] {
		t.Errorf("Sign = %q, Nix wrote %q", fresh.Sigs, n.Sigs[0])
	}
	// Re-signing is idempotent.
	if err := fresh.Sign(sk); err != nil || len(fresh.Sigs) != 1 {
		t.Errorf("re-sign: %v %q", err, fresh.Sigs)
	}
	if err := n.Sign(sk); err != nil || len(n.Sigs) != 2 {
		t.Errorf("signing an already-signed narinfo added a duplicate: %q", n.Sigs)
	}

	// A bad signature under the right name must not hide a good one (go-nix VerifyFirst bug).
	bad := *n
	badSig := "test-1:" + base64.StdEncoding.EncodeToString(make([]byte, 64))
	bad.Sigs = []string{badSig, n.Sigs[0]}
	if !bad.Verify([]PublicKey{pub1}) {
		t.Error("Verify stopped at the first signature with a matching name")
	}
	bad.Sigs = []string{badSig, "test-1:short", "test-1", "", "zzz-2:" + n.Sigs[0][7:]}
	if bad.Verify([]PublicKey{pub1, pub2}) {
		t.Error("Verify accepted bad signatures")
	}
	// Two keys with the same name (key rotation): either may match.
	other, _ := GenerateKey("test-1", nil)
	if !n.Verify([]PublicKey{other.Public(), pub1}) {
		t.Error("Verify did not try the second key of the same name")
	}

	// Changed content invalidates.
	changed := *n
	changed.NarSize++
	if changed.Verify([]PublicKey{pub1, pub2}) {
		t.Error("signature survived a NarSize change")
	}
	changed = *n
	changed.References = nil
	if changed.Verify([]PublicKey{pub1, pub2}) {
		t.Error("signature survived a References change")
	}
	// Fields outside the fingerprint do not matter.
	changed = *n
	changed.URL, changed.Compression, changed.FileSize, changed.Deriver = "elsewhere", "zstd", 1, ""
	if !changed.Verify([]PublicKey{pub1}) {
		t.Error("signature depends on URL/Compression/FileSize/Deriver")
	}

	fp, _ := n.Fingerprint()
	sig := sk.SignFingerprint(fp)
	if !pub1.VerifyFingerprint(fp, sig) || pub1.VerifyFingerprint(fp+"x", sig) || pub2.VerifyFingerprint(fp, sig) {
		t.Error("VerifyFingerprint")
	}
	if err := (&NarInfo{}).Sign(sk); err == nil {
		t.Error("Sign of an empty NarInfo succeeded")
	}
	if err := n.Sign(SecretKey{Name: "x"}); err == nil {
		t.Error("Sign with an empty key succeeded")
	}
	if !slices.IsSorted(n.Sigs) {
		t.Log("(Sigs are kept in insertion order; Bytes sorts them)")
	}
}

func TestCheckSignatureAcceptsNixsAndNamesFaults(t *testing.T) {
	good := "test-1:u+wHyY8Kytn2G0XtsyqW/qSU73mvdNcTuqg5GBd9B1GDHD2xG74nTJeOJfsokQm7IYzWiz90e7Kee/AX94q1DQ=="
	if err := CheckSignature(good); err != nil {
		t.Errorf("CheckSignature(Nix's sig): %v", err)
	}
	for _, tc := range []struct{ in, want string }{
		{"", "no ':'"},
		{"test-1", "no ':'"},
		{":" + good[7:], "key name is empty"},
		{"a b:" + good[7:], "contains ' '"},
		{"test-1:", "signature is 0 bytes, want 64"},
		{"test-1:" + good[7:40], "signature is 24 bytes, want 64"},
		{"test-1:" + good[7:50] + "*", "signature is not base64"},
	} {
		err := CheckSignature(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CheckSignature(%q) = %v, want error containing %q", tc.in, err, tc.want)
		}
	}
}
