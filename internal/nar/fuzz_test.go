package nar_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/nixrepo/nixrepo/internal/nar"
)

// FuzzCheck feeds arbitrary bytes to Check. It must never panic; errors
// must be *nar.Error with an offset inside the input; an accepted input
// must be counted and hashed correctly, give the same result when read one
// byte at a time, and be exactly what go-nix's writer produces from the
// listing (so the listing is complete and the NAR canonical); with a
// MaxListing below the listing's size it is measured the same, without a
// listing.
func FuzzCheck(f *testing.F) {
	f.Add(sampleNAR())
	f.Add(enc(narT(fileT("abc", true))...))
	f.Add(enc(narT(linkT("x"))...))
	f.Add(enc(narT(dirT())...))
	f.Add(enc(narT(dirT(entryT("a", fileT("", false)), entryT("b", dirT(entryT("c", linkT("a"))))))...))
	f.Add(enc(narT(dirT(entryT("b", fileT("", false)), entryT("a", fileT("", false))))...))
	f.Add(append(enc(narT(fileT("abc", false))...), 0))
	f.Add([]byte("nix-archive-1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := nar.Check(bytes.NewReader(data), nar.Options{Listing: true})
		if err != nil {
			var ne *nar.Error
			if !errors.As(err, &ne) {
				t.Fatalf("error %T %v is not a *nar.Error", err, err)
			}
			if ne.Offset > uint64(len(data)) {
				t.Fatalf("offset %d beyond input of %d bytes: %v", ne.Offset, len(data), err)
			}
			if !errors.Is(err, nar.ErrInvalid) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		if res.Size != uint64(len(data)) || res.SHA256 != sha256.Sum256(data) {
			t.Fatalf("accepted with Size %d SHA256 %x for %d bytes", res.Size, res.SHA256, len(data))
		}
		res2, err := nar.Check(iotest.OneByteReader(bytes.NewReader(data)), nar.Options{Listing: true})
		if err != nil || res2.Size != res.Size || res2.SHA256 != res.SHA256 || !bytes.Equal(res2.Listing, res.Listing) {
			t.Fatalf("second Check differs: %v", err)
		}
		// One byte less than the listing: none is built, the NAR is
		// still measured.
		res3, err := nar.Check(bytes.NewReader(data), nar.Options{Listing: true, MaxListing: len(res.Listing) - 1})
		if err != nil || res3.SHA256 != res.SHA256 || res3.Listing != nil || !res3.ListingSkipped {
			t.Fatalf("with MaxListing %d: %v, listing %d bytes, skipped %v", len(res.Listing)-1, err, len(res3.Listing), res3.ListingSkipped)
		}
		if out, ok := rebuild(t, res.Listing, data); ok && !bytes.Equal(out, data) {
			t.Fatalf("re-serialisation differs from the accepted input\n in %q\nout %q", data, out)
		}
		if len(data) > 0 {
			if _, err := nar.Check(bytes.NewReader(data[:len(data)-1]), nar.Options{}); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("accepted NAR minus its last byte: %v", err)
			}
		}
	})
}
