package nix

import (
	"slices"
	"strings"
	"testing"
)

// orderPath is a store path with hash part made of c.
func orderPath(t *testing.T, c byte, name string) StorePath {
	t.Helper()
	p, err := ParseStorePathBase(strings.Repeat(string(c), 32) + "-" + name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReferencesFirst: every narinfo comes after those of its references
// in the set, whatever order they are given in; self-references and
// references outside the set are ignored; the order is the same for any
// input order.
func TestReferencesFirst(t *testing.T) {
	lib := &NarInfo{StorePath: orderPath(t, 'z', "lib")}
	lib.References = []StorePath{lib.StorePath, orderPath(t, '9', "outside")}
	mid := &NarInfo{StorePath: orderPath(t, 'm', "mid"), References: []StorePath{lib.StorePath}}
	app := &NarInfo{StorePath: orderPath(t, 'a', "app"), References: []StorePath{mid.StorePath, lib.StorePath}}
	other := &NarInfo{StorePath: orderPath(t, 'b', "other")}
	want := []*NarInfo{lib, mid, app, other}
	for _, in := range [][]*NarInfo{
		{app, mid, lib, other},
		{other, lib, mid, app},
		{mid, other, app, lib},
	} {
		got := ReferencesFirst(in)
		if !slices.Equal(got, want) {
			names := func(s []*NarInfo) (out []string) {
				for _, ni := range s {
					out = append(out, ni.StorePath.Name())
				}
				return out
			}
			t.Errorf("ReferencesFirst(%v) = %v, want %v", names(in), names(got), names(want))
		}
	}
	if got := ReferencesFirst(nil); len(got) != 0 {
		t.Errorf("ReferencesFirst(nil) = %v", got)
	}
}
