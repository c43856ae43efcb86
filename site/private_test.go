package site

import (
	"strings"
	"testing"
	"time"

	"github.com/nixrepo/nixrepo/index"
)

// Store path hashes of mixedCatalog: in the public repository, in both,
// and only in the private one.
const (
	pubHash    = "0c9w0lp3wi8hmyyk8h5gg2hqvkljmw6j"
	bothHash   = "1d2w0lp3wi8hmyyk8h5gg2hqvkljmw6k"
	hushHash   = "2f3w0lp3wi8hmyyk8h5gg2hqvkljmw6l"
	hushHash2  = "3g4w0lp3wi8hmyyk8h5gg2hqvkljmw6m"
	hushRepo   = "hushrepo"
	hushOnly   = "whisperlib"
	hushChan   = "quietchan"
	hushSnap   = "2026.quietsnap"
	hushDesc   = "packages nobody may see"
	hushVer    = "9.9.9"
	hushPubKey = "hushrepo-1:Zq1Kz3WbqHFx0m2lHPNa3o8CWQKZ5nqkqLNlBOa0bFY="
)

// MixedCatalog is a catalog of a public repository "pub" and a private one
// (hushRepo): a package only in pub, one only in the private repository,
// and one in both whose newest version (hushVer) and one channel snapshot
// are private.
func MixedCatalog() *index.Catalog {
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	path := func(hash, name, ver string, repos ...string) index.PathInfo {
		return index.PathInfo{StorePath: "/nix/store/" + hash + "-" + name + "-" + ver, Output: "out", NarSize: 1000, FileSize: 500, Uploaded: at, Repos: repos}
	}
	return &index.Catalog{
		Generated: at,
		Repos: []index.RepoInfo{
			{Name: "pub", Type: "local", PublicKey: "pub-1:6q1Kz3WbqHFx0m2lHPNa3o8CWQKZ5nqkqLNlBOa0bFY=", Paths: 2},
			{Name: hushRepo, Type: "local", Description: hushDesc, PublicKey: hushPubKey, Paths: 3},
		},
		Channels: []index.ChannelInfo{{Repo: hushRepo, Name: hushChan, Latest: hushSnap, Snapshots: []index.SnapshotInfo{{ID: hushSnap, Flavor: "nixpkgs", NarHash: "1068dcc3r6lasx6ggn3l4kdh9z2km19w9vl1xb59bqydsgda4kr2", Uploaded: at}}}},
		Packages: []index.Package{
			{Name: "greet", Latest: hushVer, Repos: []string{hushRepo, "pub"}, Versions: []index.Version{
				{Version: hushVer, Repos: []string{hushRepo}, Paths: []index.PathInfo{path(hushHash2, "greet", hushVer, hushRepo)}},
				{Version: "1.0", Repos: []string{hushRepo, "pub"}, Paths: []index.PathInfo{path(bothHash, "greet", "1.0", hushRepo, "pub")},
					Channels: []string{hushRepo + "/" + hushChan + "/" + hushSnap}},
			}},
			{Name: "pubtool", Latest: "2.0", Repos: []string{"pub"}, Versions: []index.Version{
				{Version: "2.0", Repos: []string{"pub"}, Paths: []index.PathInfo{path(pubHash, "pubtool", "2.0", "pub")}},
			}},
			{Name: hushOnly, Latest: "0.1", Repos: []string{hushRepo}, Description: hushDesc, Versions: []index.Version{
				{Version: "0.1", Repos: []string{hushRepo}, Paths: []index.PathInfo{path(hushHash, hushOnly, "0.1", hushRepo)}},
			}},
		},
		Stats: index.Stats{Paths: 4, Versions: 4, Packages: 3, Derivations: 17},
	}
}

// PrivateMarks are strings of MixedCatalog's private repository that no
// file of a site restricted to "pub" may contain.
var PrivateMarks = []string{hushRepo, hushOnly, hushHash, hushHash2, hushChan, hushSnap, hushDesc, hushVer, hushPubKey}

// TestSiteShowsOnlyAllowedRepositories renders MixedCatalog restricted to
// pub and greps every file (pages, search manifest and shards, name
// lists) for anything of the private repository.
func TestSiteShowsOnlyAllowedRepositories(t *testing.T) {
	for _, opts := range []Options{{Repos: []string{"pub"}}, {Repos: []string{"pub"}, PageSize: 1, ShardSize: 1}} {
		files := render(t, MixedCatalog(), opts)
		all := ""
		for p, f := range files {
			for _, m := range PrivateMarks {
				if strings.Contains(string(f.Data), m) || strings.Contains(p, m) {
					t.Errorf("%s mentions %q of the private repository", p, m)
				}
			}
			if !strings.HasPrefix(p, "assets/") {
				all += string(f.Data)
			}
		}
		for _, want := range []string{pubHash, bothHash, "pubtool", "greet"} {
			if !strings.Contains(all, want) {
				t.Errorf("the site lacks %q of the public repository", want)
			}
		}
		if _, ok := files[PackagePath(hushOnly)]; ok {
			t.Errorf("the site has a page for %s, only in the private repository", hushOnly)
		}
		if page := string(files[PackagePath("greet")].Data); !strings.Contains(page, "1.0") {
			t.Errorf("greet's page lacks its public version:\n%s", page)
		}
		if home := string(files["index.html"].Data); !strings.Contains(home, "2 packages, 2 versions and 2 store paths in 1 repository") {
			t.Errorf("home page counts private paths:\n%s", home)
		}
	}
	// Without the restriction everything is there: the grep can fail.
	files := render(t, MixedCatalog(), Options{})
	for _, m := range []string{hushOnly, hushHash, hushChan} {
		found := false
		for _, f := range files {
			found = found || strings.Contains(string(f.Data), m)
		}
		if !found {
			t.Errorf("the unrestricted site lacks %q", m)
		}
	}
	// An empty list shows nothing of any repository.
	files = render(t, MixedCatalog(), Options{Repos: []string{}})
	for p, f := range files {
		for _, m := range []string{hushHash, pubHash, "pubtool"} {
			if strings.Contains(string(f.Data), m) {
				t.Errorf("a site of no repository has %q in %s", m, p)
			}
		}
	}
}
