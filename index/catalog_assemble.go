package index

import (
	"context"
	"iter"
	"runtime"
	"slices"
	"sort"
	"time"

	"github.com/nixrepo/nixrepo/internal/work"
)

// ---------------------------------------------------------------------------
// Assembly

// pathEntry is a store path of a package with its version.
type pathEntry struct {
	PathInfo
	version string
}

// assembleAll groups the merged paths of all repositories into packages.
// Parsing the paths' names and assembling the packages run on every core.
func assembleAll(all []repoPaths, ci *channelIndex, meta map[string]pkgMeta) *Catalog {
	merged := mergeRepos(all)
	workers := runtime.GOMAXPROCS(0)
	const chunk = 4096
	type parsed struct{ pkg, version, output string } // of an Entry, what grouping needs
	entries := make([]parsed, len(merged))
	work.Each(context.Background(), workers, (len(merged)+chunk-1)/chunk, func(c int) error {
		for i := c * chunk; i < min(len(merged), (c+1)*chunk); i++ {
			if merged[i].rec.kind == 'p' {
				if e, err := ParseEntry(merged[i].rec.sp); err == nil && e.Kind == KindPackage {
					entries[i] = parsed{e.Package, e.Version, e.Output}
				}
			}
		}
		return nil
	})
	cat := &Catalog{}
	byPkg := map[string][]pathEntry{}
	for i, m := range merged {
		if m.rec.kind != 'p' {
			cat.Stats.count(m.rec.kind)
			continue
		}
		e := &entries[i]
		if e.output == "" { // did not parse (a record's kind is from the same parse)
			continue
		}
		cat.Stats.count('p')
		byPkg[e.pkg] = append(byPkg[e.pkg], pathEntry{
			PathInfo: PathInfo{StorePath: m.rec.sp, Output: e.output, NarSize: m.rec.narSize, FileSize: m.rec.fileSize,
				Uploaded: time.Unix(0, m.rec.mod).UTC(), Repos: m.repos},
			version: e.version,
		})
	}
	merged, entries = nil, nil
	names := make([]string, 0, len(byPkg))
	for n := range byPkg {
		names = append(names, n)
	}
	slices.Sort(names)
	cat.Packages = make([]Package, len(names))
	const pkgChunk = 256
	work.Each(context.Background(), workers, (len(names)+pkgChunk-1)/pkgChunk, func(c int) error {
		for i := c * pkgChunk; i < min(len(names), (c+1)*pkgChunk); i++ {
			n := names[i]
			pm, ok := meta[n]
			cat.Packages[i] = assemble(n, byPkg[n], ci.lookup, metaFunc(pm, ok))
		}
		return nil
	})
	for i := range cat.Packages {
		cat.Stats.Versions += len(cat.Packages[i].Versions)
	}
	cat.Stats.Packages = len(names)
	return cat
}

func metaFunc(pm pkgMeta, ok bool) func(*Package) {
	return func(p *Package) {
		if ok {
			p.Description, p.Homepage, p.License, p.AttrPath = pm.Description, pm.Homepage, pm.License, pm.AttrPath
		}
	}
}

type mergedPath struct {
	rec   *pathRec // the earliest upload
	repos []string
}

// mergeRepos merges the repositories' hash-sorted narinfos into one entry
// per store path.
func mergeRepos(all []repoPaths) []mergedPath {
	total := 0
	for i := range all {
		total += len(all[i].recs)
	}
	out := make([]mergedPath, 0, total)
	for m := range mergedPaths(all) {
		out = append(out, m)
	}
	return out
}

// mergedPaths yields mergeRepos' entries in hash order.
func mergedPaths(all []repoPaths) iter.Seq[mergedPath] {
	return func(yield func(mergedPath) bool) {
		single := make([][]string, len(all)) // shared one-repo slices
		for i := range all {
			single[i] = []string{all[i].name}
		}
		pos := make([]int, len(all))
		for {
			best := ""
			for i := range all {
				if pos[i] < len(all[i].recs) {
					if h := all[i].recs[pos[i]].hash(); best == "" || h < best {
						best = h
					}
				}
			}
			if best == "" {
				return
			}
			var m mergedPath
			n := 0
			for i := range all {
				if pos[i] < len(all[i].recs) && all[i].recs[pos[i]].hash() == best {
					r := &all[i].recs[pos[i]]
					if m.rec == nil || r.mod < m.rec.mod {
						m.rec = r
					}
					n++
					if n == 1 {
						m.repos = single[i]
					} else {
						m.repos = append(slices.Clip(m.repos), all[i].name)
					}
					pos[i]++
				}
			}
			if !yield(m) {
				return
			}
		}
	}
}

// count counts a store path of the kind (a pathRec's kind).
func (s *Stats) count(kind byte) {
	switch kind {
	case 'p':
		s.Paths++
	case 'd':
		s.Derivations++
	case 's':
		s.Sources++
	default:
		s.Other++
	}
}

// assemble builds a package from its store paths: versions highest first by
// CompareVersions, paths by output then store path, ambiguous versions
// flagged, channels and metadata joined.
func assemble(name string, ps []pathEntry, channels func(name, version string) []string, meta func(*Package)) Package {
	sort.Slice(ps, func(i, j int) bool {
		a, b := &ps[i], &ps[j]
		if a.version != b.version {
			return a.version < b.version
		}
		if a.Output != b.Output {
			return a.Output < b.Output
		}
		return a.StorePath < b.StorePath
	})
	p := Package{Name: name}
	for i := 0; i < len(ps); {
		j := i
		for j < len(ps) && ps[j].version == ps[i].version {
			j++
		}
		v := Version{Version: ps[i].version, Paths: make([]PathInfo, 0, j-i)}
		for k := i; k < j; k++ {
			v.Paths = append(v.Paths, ps[k].PathInfo)
			v.Repos = unionSorted(v.Repos, ps[k].Repos)
			if k > i && ps[k].Output == ps[k-1].Output {
				v.Ambiguous = true // several builds of one output
			}
		}
		v.Channels = channels(name, v.Version)
		p.Repos = unionSorted(p.Repos, v.Repos)
		p.Versions = append(p.Versions, v)
		i = j
	}
	sort.SliceStable(p.Versions, func(i, j int) bool {
		if c := CompareVersions(p.Versions[i].Version, p.Versions[j].Version); c != 0 {
			return c > 0
		}
		return p.Versions[i].Version < p.Versions[j].Version
	})
	for i := 1; i < len(p.Versions); i++ {
		if CompareVersions(p.Versions[i-1].Version, p.Versions[i].Version) == 0 {
			p.Versions[i-1].Ambiguous, p.Versions[i].Ambiguous = true, true
		}
	}
	if len(p.Versions) > 0 {
		p.Latest = p.Versions[0].Version
	}
	meta(&p)
	return p
}

// unionSorted merges sorted b into sorted a (a may be reused when b adds
// nothing; a is never modified in place).
func unionSorted(a, b []string) []string {
	if len(a) == 0 {
		return b
	}
	add := false
	for _, s := range b {
		if _, found := slices.BinarySearch(a, s); !found {
			add = true
			break
		}
	}
	if !add {
		return a
	}
	out := slices.Clone(a)
	for _, s := range b {
		if i, found := slices.BinarySearch(out, s); !found {
			out = slices.Insert(out, i, s)
		}
	}
	return out
}
