package search

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/nixrepo/nixrepo/index"
)

// pkg makes a catalog package; versions are "version@repo,repo".
func pkg(name, desc string, versions ...string) index.Package {
	p := index.Package{Name: name, Description: desc}
	for _, v := range versions {
		ver, repos, _ := strings.Cut(v, "@")
		rs := strings.Split(repos, ",")
		p.Versions = append(p.Versions, index.Version{Version: ver, Repos: rs,
			Paths: []index.PathInfo{{StorePath: "/nix/store/" + strings.Repeat("0", 32) + "-" + name + "-" + ver, Output: "out", Repos: rs}}})
		for _, r := range rs {
			if !slices.Contains(p.Repos, r) {
				p.Repos = append(p.Repos, r)
			}
		}
	}
	slices.Sort(p.Repos)
	p.Latest = p.Versions[0].Version
	return p
}

var testPackages = []index.Package{
	pkg("hello", "A program that produces a familiar, friendly greeting", "2.12.1@main", "2.10@staging"),
	pkg("helloworld", "", "1.0@main"),
	pkg("hello-wayland", "", "0.1@staging"),
	pkg("python3.11-hello", "", "0.3@main"),
	pkg("jello", "", "1@main"),
	pkg("othello", "", "1@main"),
	pkg("greeter", "says hello to everyone", "3.0@main"),
	pkg("SDL2", "", "2.28@main"),
	pkg("sdl2-compat", "", "2.30@main"),
	pkg("openssl", "", "3.0.8@main,staging", "1.1.1w@main"),
}

func buildTestIndex(t testing.TB, shards int) *index.Index {
	t.Helper()
	dir := t.TempDir()
	pkgs := slices.Clone(testPackages)
	slices.SortFunc(pkgs, func(a, b index.Package) int { return strings.Compare(a.Name, b.Name) })
	if err := index.BuildIndex(dir, pkgs, 1, shards); err != nil {
		t.Fatal(err)
	}
	x, err := index.OpenIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

func names(rs []Result) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Name+":"+string(r.Match))
	}
	return out
}

func TestSearchRanksExactPrefixWordFuzzy(t *testing.T) {
	tests := []struct {
		query string
		opts  Options
		want  []string
	}{
		{"hello", Options{}, []string{"hello:exact", "helloworld:prefix", "hello-wayland:prefix", "python3.11-hello:word", "greeter:description"}},
		{"HELLO", Options{}, []string{"hello:exact", "helloworld:prefix", "hello-wayland:prefix", "python3.11-hello:word", "greeter:description"}},
		{"hellp", Options{}, []string{"hello:fuzzy", "hello-wayland:fuzzy", "python3.11-hello:fuzzy"}},
		{"jelly", Options{}, []string{"jello:fuzzy"}},
		{"hello", Options{Limit: 2}, []string{"hello:exact", "helloworld:prefix"}},
		{"hello", Options{Repos: []string{"staging"}}, []string{"hello:exact", "hello-wayland:prefix"}},
		{"hello", Options{Repos: []string{}}, nil},
		{"hel", Options{}, []string{"hello:prefix", "helloworld:prefix", "hello-wayland:prefix", "python3.11-hello:word"}},
		{"helo", Options{}, []string{"hello:fuzzy", "hello-wayland:fuzzy", "python3.11-hello:fuzzy"}},
		{"wayland", Options{}, []string{"hello-wayland:word"}},
		{"python hello", Options{}, []string{"python3.11-hello:word"}},
		{"sdl2", Options{}, []string{"SDL2:exact", "sdl2-compat:prefix"}},
		{"SDL", Options{}, []string{"SDL2:prefix", "sdl2-compat:prefix"}},
		{"opensl", Options{}, []string{"openssl:fuzzy"}},
		{"opnesssl-x", Options{}, nil},
		{"opnessl", Options{}, []string{"openssl:fuzzy"}}, // a transposition is one edit
		{"greeting", Options{}, []string{"hello:description"}},
		{"zzzzzz", Options{}, nil},
		// A typo that joins two words is one edit of the whole name.
		{"hellowayland", Options{}, []string{"hello-wayland:fuzzy"}},
		{"openssl3", Options{}, []string{"openssl:fuzzy"}},
		// Known words are taken as typed; the unknown one is fuzzy.
		{"python3.11-helo", Options{}, []string{"python3.11-hello:fuzzy"}},
	}
	for _, shards := range []int{1, 3} {
		x := buildTestIndex(t, shards)
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%d/%s/%v/%d", shards, tc.query, tc.opts.Repos, tc.opts.Limit), func(t *testing.T) {
				opts := tc.opts
				got, err := Search(x, tc.query, &opts)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(names(got), tc.want) {
					t.Errorf("Search(%q) = %v, want %v", tc.query, names(got), tc.want)
				}
			})
		}
	}
}

// TestSearchWordTierShortestFirst: a word shared by more packages than a
// ranked tier looks at yields the shortest names (the index holds shorter
// names first and the tier stops after its first matches).
func TestSearchWordTierShortestFirst(t *testing.T) {
	var pkgs []index.Package
	for i := range 300 {
		pkgs = append(pkgs, pkg(fmt.Sprintf("libsomething-rather-long%d-dev", i), "", "1@main"))
	}
	for _, n := range []string{"ffffff-dev", "a-dev", "dddd-dev", "bb-dev", "eeeee-dev", "ccc-dev"} {
		pkgs = append(pkgs, pkg(n, "", "1@main"))
	}
	slices.SortFunc(pkgs, func(a, b index.Package) int { return strings.Compare(a.Name, b.Name) })
	for _, shards := range []int{1, 2} {
		dir := t.TempDir()
		if err := index.BuildIndex(dir, pkgs, 1, shards); err != nil {
			t.Fatal(err)
		}
		x, err := index.OpenIndex(dir)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Search(x, "dev", &Options{Limit: 5})
		x.Close()
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"a-dev:word", "bb-dev:word", "ccc-dev:word", "dddd-dev:word", "eeeee-dev:word"}
		if !slices.Equal(names(got), want) {
			t.Errorf("%d shards: Search(dev) = %v, want %v", shards, names(got), want)
		}
	}
}

func TestSearchResultFieldsFollowRepoFilter(t *testing.T) {
	x := buildTestIndex(t, 2)
	got, err := Search(x, "openssl", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Result{Name: "openssl", Latest: "3.0.8", NumVersions: 2, Versions: []string{"3.0.8", "1.1.1w"}, Repos: []string{"main", "staging"}, Match: MatchExact}
	if len(got) != 1 || fmt.Sprint(got[0]) != fmt.Sprint(want) || !slices.Equal(got[0].Versions, want.Versions) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	// The repository filter recomputes versions and latest.
	got, _ = Search(x, "hello", &Options{Repos: []string{"staging"}, Limit: 1})
	if len(got) != 1 || got[0].Latest != "2.10" || got[0].NumVersions != 1 || !slices.Equal(got[0].Repos, []string{"staging"}) {
		t.Errorf("hello in staging = %+v", got)
	}
	got, _ = Search(x, "hello", &Options{Limit: 1})
	if got[0].Description == "" || got[0].Latest != "2.12.1" {
		t.Errorf("hello = %+v", got[0])
	}
	for _, q := range []string{"", "  ", "-.-"} {
		if _, err := Search(x, q, nil); !errors.Is(err, ErrEmptyQuery) {
			t.Errorf("Search(%q) err = %v", q, err)
		}
	}
}
