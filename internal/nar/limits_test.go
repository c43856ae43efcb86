package nar_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nixrepo/nixrepo/internal/memtest"
	"github.com/nixrepo/nixrepo/internal/nar"
	"github.com/nixrepo/nixrepo/internal/nar/nartest"
)

// TestCheckSkipsListingPastMaxListing: a listing that would exceed
// MaxListing is not built (Listing nil, ListingSkipped set) while the NAR
// is still checked, hashed and counted; at the exact size it is built.
func TestCheckSkipsListingPastMaxListing(t *testing.T) {
	data := sampleNAR()
	full, err := nar.Check(bytes.NewReader(data), nar.Options{Listing: true})
	if err != nil || full.ListingSkipped {
		t.Fatal(err, full.ListingSkipped)
	}
	for _, tc := range []struct {
		max  int
		skip bool
	}{
		{len(full.Listing), false},
		{len(full.Listing) + 1, false},
		{len(full.Listing) - 1, true},
		{10, true},
	} {
		res, err := nar.Check(bytes.NewReader(data), nar.Options{Listing: true, MaxListing: tc.max})
		if err != nil {
			t.Fatalf("MaxListing %d: %v", tc.max, err)
		}
		if res.Size != full.Size || res.SHA256 != full.SHA256 {
			t.Errorf("MaxListing %d: the NAR measured differently", tc.max)
		}
		if res.ListingSkipped != tc.skip {
			t.Errorf("MaxListing %d (listing %d bytes): ListingSkipped %v, want %v", tc.max, len(full.Listing), res.ListingSkipped, tc.skip)
		}
		if tc.skip && res.Listing != nil {
			t.Errorf("MaxListing %d: a skipped listing has %d bytes", tc.max, len(res.Listing))
		}
		if !tc.skip && !bytes.Equal(res.Listing, full.Listing) {
			t.Errorf("MaxListing %d: listing differs", tc.max)
		}
	}
	// Without Listing nothing is skipped.
	if res, _ := nar.Check(bytes.NewReader(data), nar.Options{MaxListing: 1}); res.ListingSkipped || res.Listing != nil {
		t.Error("listing built or skipped without Options.Listing")
	}
}

// TestCheckListingMemoryBounded: 4000 symlinks with 64 KiB targets (a
// 262 MB NAR that compresses to kilobytes) would make a 262 MB listing;
// with the default MaxListing the heap stays within three times
// DefaultMaxListing (the listing buffer doubles up to it, and the garbage
// of that is counted until collected) and no listing is returned.
func TestCheckListingMemoryBounded(t *testing.T) {
	var res nar.Result
	var err error
	peak := memtest.PeakHeap(func() {
		res, err = nar.Check(nartest.Symlinks(4000, nar.MaxTargetLen), nar.Options{Listing: true})
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.ListingSkipped || res.Listing != nil {
		t.Errorf("listing of %d bytes returned, skipped %v", len(res.Listing), res.ListingSkipped)
	}
	if peak > 3*nar.DefaultMaxListing {
		t.Errorf("heap grew by %d MiB checking a NAR of %d MB", peak>>20, res.Size/1e6)
	}
	t.Logf("NAR of %d bytes: heap grew by %d MiB", res.Size, peak>>20)
}

// TestCheckRefusesOverlongPath: the path inside the NAR is bounded by
// MaxPathLen (so the path Check keeps is), whatever the depth and name
// lengths; a path of exactly MaxPathLen is accepted.
func TestCheckRefusesOverlongPath(t *testing.T) {
	nested := func(lens ...int) []byte {
		node := fileT("x", false)
		for i := len(lens) - 1; i >= 0; i-- {
			node = dirT(entryT(strings.Repeat(string(rune('a'+i%26)), lens[i]), node))
		}
		return enc(narT(node)...)
	}
	// 15 components of 1+4096 bytes, and one that fills the rest.
	lens := make([]int, 16)
	for i := range 15 {
		lens[i] = nar.MaxNameLen
	}
	lens[15] = nar.MaxPathLen - 15*(1+nar.MaxNameLen) - 1
	if _, err := nar.Check(bytes.NewReader(nested(lens...)), nar.Options{Listing: true}); err != nil {
		t.Fatalf("path of exactly %d bytes: %v", nar.MaxPathLen, err)
	}
	lens[15]++
	_, err := nar.Check(bytes.NewReader(nested(lens...)), nar.Options{Listing: true})
	if !errors.Is(err, nar.ErrInvalid) || !strings.Contains(err.Error(), fmt.Sprintf("longer than %d bytes", nar.MaxPathLen)) {
		t.Fatalf("path of %d bytes: got %v", nar.MaxPathLen+1, err)
	}
}

// TestCheckEntryOrderAcrossSubtrees: the order check compares each entry
// with its previous sibling, also after that sibling's subtree (which
// reuses the path buffer) and across depths.
func TestCheckEntryOrderAcrossSubtrees(t *testing.T) {
	deep := dirT(entryT("zzzzzzzz", dirT(entryT("zzzzzzzzzzzzzzzz", fileT("", false)))))
	for _, tc := range []struct {
		name string
		nar  []byte
		ok   bool
	}{
		{"sorted after a deep sibling", enc(narT(dirT(entryT("a", deep), entryT("b", fileT("", false))))...), true},
		{"unsorted after a deep sibling", enc(narT(dirT(entryT("b", deep), entryT("a", fileT("", false))))...), false},
		{"duplicate after a deep sibling", enc(narT(dirT(entryT("b", deep), entryT("b", fileT("", false))))...), false},
		{"prefix sorts first", enc(narT(dirT(entryT("ab", deep), entryT("abc", fileT("", false))))...), true},
		{"longer name first", enc(narT(dirT(entryT("abc", deep), entryT("ab", fileT("", false))))...), false},
	} {
		_, err := nar.Check(bytes.NewReader(tc.nar), nar.Options{})
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
		if err != nil && !strings.Contains(err.Error(), "nar: offset") {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	_, err := nar.Check(bytes.NewReader(enc(narT(dirT(entryT("d", dirT(entryT("b", deep), entryT("a", fileT("", false))))))...)), nar.Options{})
	var ne *nar.Error
	if !errors.As(err, &ne) || ne.Path != "/d" {
		t.Errorf("unsorted entries of /d reported at %v", err)
	}
}
