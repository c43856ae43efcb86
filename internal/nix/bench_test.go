package nix

import "testing"

func BenchmarkParseNarInfo(b *testing.B) {
	in := []byte(realNarInfo)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseNarInfo(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNarInfoBytes(b *testing.B) {
	n, err := ParseNarInfo([]byte(realNarInfo))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = n.Bytes()
	}
}

func BenchmarkFingerprint(b *testing.B) {
	n, _ := ParseNarInfo([]byte(realNarInfo))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := n.Fingerprint(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	n, _ := ParseNarInfo([]byte(realNarInfo))
	keys := []PublicKey{mustPub(b, realPub2)}
	b.ReportAllocs()
	for b.Loop() {
		if !n.Verify(keys) {
			b.Fatal("no")
		}
	}
}

func BenchmarkSign(b *testing.B) {
	n, _ := ParseNarInfo([]byte(realNarInfo))
	sk := mustSec(b, realSec1)
	b.ReportAllocs()
	for b.Loop() {
		c := *n
		c.Sigs = nil
		if err := c.Sign(sk); err != nil {
			b.Fatal(err)
		}
	}
}
