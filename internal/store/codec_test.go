package store

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func TestCompressRoundTripDetectsDamage(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 3<<20) // more than one S2 block, incompressible
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"empty", nil},
		{"line", []byte("/nix/store/0000-a\t1\t2\t3\tp\n")},
		{"repetitive", bytes.Repeat([]byte(`{"name":"x","latest":"1.0"},`), 100000)},
		{"random", random},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte("kept")
			z := AppendS2(append([]byte(nil), prefix...), tc.raw)
			if !bytes.HasPrefix(z, prefix) {
				t.Fatal("appendCompressed overwrote dst")
			}
			got, err := DecodeS2(z[len(prefix):])
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.raw) {
				t.Fatalf("round trip: got %d bytes, want %d", len(got), len(tc.raw))
			}
			if len(tc.raw) == 0 {
				return
			}
			// A truncated or damaged object is an error, never short data.
			if _, err := DecodeS2(z[len(prefix) : len(z)-1]); err == nil {
				t.Error("truncated object: no error")
			}
			bad := bytes.Clone(z[len(prefix):])
			bad[len(bad)-1] ^= 0xff
			if _, err := DecodeS2(bad); err == nil {
				t.Error("damaged object: no error")
			}
		})
	}
	if _, err := DecodeS2([]byte("\x28\xb5\x2f\xfd zstd, not s2")); err == nil {
		t.Error("a zstd object read as S2: no error")
	}
}
