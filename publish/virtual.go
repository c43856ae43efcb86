package publish

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

// Virtual describes a virtual repository to materialise.
type Virtual struct {
	Name    string
	Members []string // in lookup order
	// Key, when set, re-signs the virtual repository's narinfos so clients
	// trust one key.
	Key nix.SecretKey
}

// Conflict is one store path that members disagree on.
type Conflict struct {
	StorePath string `json:"storePath"`
	Chosen    string `json:"chosen"`  // the member that won (earlier in order)
	Ignored   string `json:"ignored"` // the member with another NarHash
	NarHashes string `json:"narHashes"`
}

// VirtualReport says what Materialize did.
type VirtualReport struct {
	Repo      string     `json:"repo"`
	Paths     int        `json:"paths"`     // in the virtual repository afterwards
	Added     int        `json:"added"`     // narinfos written this run
	Copied    int        `json:"copied"`    // NAR files copied
	Skipped   []string   `json:"skipped"`   // paths whose references no member has
	Conflicts []Conflict `json:"conflicts"` // NarHash disagreements between members
}

type memberPath struct {
	member string
	ni     *nix.NarInfo
}

// Materialize writes virtual repository v as its own prefix of the bucket:
// the union of its members' paths, the first member in order winning for a
// store path several have (disagreeing NarHashes are reported). NAR files
// and listings are copied with the bucket's server-side copy where the
// driver has one (S3, GCS, Azure; a file bucket copies the bytes), narinfos
// are written after their NAR files and references, re-signed when v has a
// key. It is incremental: paths already in the virtual repository cost a
// listing.
func Materialize(ctx context.Context, st *store.Store, v Virtual) (*VirtualReport, error) {
	rep := &VirtualReport{Repo: v.Name, Skipped: []string{}, Conflicts: []Conflict{}}
	dst := st.Repo(v.Name)
	have := map[string]bool{}
	if err := dst.NarInfos(ctx, func(h string) error { have[h] = true; return nil }); err != nil {
		return nil, err
	}
	chosen := map[string]memberPath{}
	for _, m := range v.Members {
		src := st.Repo(m)
		var hashes []string
		if err := src.NarInfos(ctx, func(h string) error { hashes = append(hashes, h); return nil }); err != nil {
			return nil, fmt.Errorf("virtual %s: member %s: %w", v.Name, m, err)
		}
		for _, h := range hashes {
			prev, seen := chosen[h]
			if seen && prev.ni == nil {
				continue
			}
			if have[h] && !seen {
				// Already materialised; still read it below for conflicts
				// only when another member also has it.
				chosen[h] = memberPath{member: m}
				continue
			}
			ni, _, err := src.ReadNarInfo(ctx, h)
			if err != nil {
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				return nil, fmt.Errorf("virtual %s: member %s: %w", v.Name, m, err)
			}
			if seen {
				if !prev.ni.NarHash.Equal(ni.NarHash) {
					rep.Conflicts = append(rep.Conflicts, Conflict{StorePath: ni.StorePath.Absolute(), Chosen: prev.member, Ignored: m,
						NarHashes: prev.ni.NarHash.String() + " vs " + ni.NarHash.String()})
				}
				continue
			}
			chosen[h] = memberPath{member: m, ni: ni}
		}
	}
	// Write references first; a path with a reference no member has (or
	// one that could not be written) is skipped.
	done := map[string]bool{}
	for h := range have {
		done[h] = true
	}
	var pending []*nix.NarInfo
	for _, mp := range chosen {
		if mp.ni != nil {
			pending = append(pending, mp.ni)
		}
	}
	for _, ni := range nix.ReferencesFirst(pending) {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		h := ni.StorePath.HashPart()
		if done[h] {
			continue
		}
		complete := true
		for _, ref := range ni.References {
			if ref.HashPart() != h && !done[ref.HashPart()] {
				complete = false
			}
		}
		if !complete {
			rep.Skipped = append(rep.Skipped, ni.StorePath.Absolute())
			continue
		}
		if err := copyPath(ctx, st, dst, chosen[h], v.Key, rep); err != nil {
			rep.Skipped = append(rep.Skipped, fmt.Sprintf("%s (%v)", ni.StorePath.Absolute(), err))
			continue
		}
		done[h] = true
	}
	rep.Paths = len(done)
	sort.Strings(rep.Skipped)
	return rep, nil
}

func copyPath(ctx context.Context, st *store.Store, dst *store.Cache, mp memberPath, key nix.SecretKey, rep *VirtualReport) error {
	src := st.Repo(mp.member)
	ni := *mp.ni
	if err := store.CheckRel(ni.URL); err != nil {
		return err
	}
	if ok, err := dst.Exists(ctx, ni.URL); err != nil {
		return err
	} else if !ok {
		if err := dst.CopyFrom(ctx, ni.URL, src, ni.URL); err != nil {
			return err
		}
		rep.Copied++
	}
	h := ni.StorePath.HashPart()
	if err := dst.CopyFrom(ctx, store.ListingFile(h), src, store.ListingFile(h)); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	ni.Sigs = append([]string(nil), mp.ni.Sigs...)
	if key.Name != "" {
		if err := ni.Sign(key); err != nil {
			return err
		}
	}
	err := dst.PutNarInfo(ctx, &ni)
	if err != nil && !errors.Is(err, store.ErrExists) {
		return err
	}
	rep.Added++
	return nil
}
