package nix

import (
	"maps"
	"slices"
)

// ReferencesFirst returns infos in the order to write them so that every
// narinfo comes after the narinfos of its references among them: a
// repository written in this order never holds a narinfo whose references
// it lacks. References are matched by hash part, as narinfos are named;
// self-references and references outside infos do not order anything. The
// order is deterministic: paths are taken by hash part, each preceded,
// depth-first, by its references in the order its narinfo lists them. Of
// several narinfos with one hash part, the last is kept.
func ReferencesFirst(infos []*NarInfo) []*NarInfo {
	byHash := make(map[string]*NarInfo, len(infos))
	for _, ni := range infos {
		byHash[ni.StorePath.HashPart()] = ni
	}
	out := make([]*NarInfo, 0, len(byHash))
	visited := make(map[string]bool, len(byHash))
	var visit func(h string)
	visit = func(h string) {
		if visited[h] {
			return
		}
		visited[h] = true
		ni := byHash[h]
		for _, ref := range ni.References {
			if rh := ref.HashPart(); rh != h && byHash[rh] != nil {
				visit(rh)
			}
		}
		out = append(out, ni)
	}
	for _, h := range slices.Sorted(maps.Keys(byHash)) {
		visit(h)
	}
	return out
}
