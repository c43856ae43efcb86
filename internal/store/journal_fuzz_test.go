package store

import (
	"bytes"
	"testing"

	"github.com/nixrepo/nixrepo/internal/nix"
)

// FuzzDecodeJournal: the journal decoder never panics, and every record it
// accepts names a store path by a valid hash part.
func FuzzDecodeJournal(f *testing.F) {
	f.Add([]byte("/nix/store/8yhfprxp9fym8hjpsb3z3hzsfbrk1z42-a-1.0\t100\t40\t1700000000000000000\n"))
	f.Add([]byte("/nix/store/x\t1\t2\t3\n"))
	f.Add([]byte("a\tb\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := decodeJournal(bytes.Clone(b)) // it keeps its argument
		if err != nil {
			return
		}
		for _, r := range recs {
			if h := r.HashPart(); !nix.IsHashPart(h) {
				t.Fatalf("accepted %q as %+v", b, r)
			}
		}
	})
}
