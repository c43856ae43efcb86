package site

import (
	"slices"
	"strings"

	"github.com/nixrepo/nixrepo/index"
)

// restrict returns cat cut down to the repositories in allowed: packages
// through index.FilterPackage (paths, versions and channel snapshots of
// other repositories dropped, a package with nothing left gone), and the
// repository and channel lists and the counts recomputed. Packages with
// nothing outside allowed are shared, not copied.
func restrict(cat *index.Catalog, allowed []string) *index.Catalog {
	ok := func(repo string) bool { return slices.Contains(allowed, repo) }
	out := &index.Catalog{Generated: cat.Generated, Repos: []index.RepoInfo{}, Channels: []index.ChannelInfo{}, Packages: make([]index.Package, 0, len(cat.Packages))}
	for _, r := range cat.Repos {
		if ok(r.Name) {
			out.Repos = append(out.Repos, r)
		}
	}
	for _, c := range cat.Channels {
		if ok(c.Repo) {
			out.Channels = append(out.Channels, c)
		}
	}
	for i := range cat.Packages {
		p := &cat.Packages[i]
		if !onlyIn(p, ok) {
			if p = index.FilterPackage(p, ok); p == nil {
				continue
			}
		}
		out.Packages = append(out.Packages, *p)
		out.Stats.Versions += len(p.Versions)
		for _, v := range p.Versions {
			out.Stats.Paths += len(v.Paths)
		}
	}
	// Derivations, sources and other paths are counted over every
	// repository only: they are left at zero.
	out.Stats.Packages = len(out.Packages)
	return out
}

// onlyIn reports whether every repository p names is allowed.
func onlyIn(p *index.Package, ok func(string) bool) bool {
	all := func(rs []string) bool { return !slices.ContainsFunc(rs, func(r string) bool { return !ok(r) }) }
	if !all(p.Repos) {
		return false
	}
	for _, v := range p.Versions {
		if !all(v.Repos) {
			return false
		}
		for _, pi := range v.Paths {
			if !all(pi.Repos) {
				return false
			}
		}
		for _, c := range v.Channels {
			if r, _, _ := strings.Cut(c, "/"); !ok(r) {
				return false
			}
		}
	}
	return true
}
