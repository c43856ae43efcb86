package config_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/nixrepo/nixrepo/internal/config"
)

// repos: a private local repository, a public local one, a public remote
// and a virtual one over the first two.
const repos = `version = 1
[store]
url = "mem://"
[[repo]]
name = "nix-local"
type = "local"
signing_key_file = "a.sec"
[[repo]]
name = "pub"
type = "local"
signing_key_file = "p.sec"
public = true
[[repo]]
name = "up"
type = "remote"
public = true
[[repo]]
name = "all"
type = "virtual"
members = ["nix-local", "pub"]
`

const token = "\n[[token]]\nname = \"ci\"\nsha256 = \"" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" + "\"\n"

func TestAccessRulesValidated(t *testing.T) {
	tests := []struct {
		name string
		toml string
		want string // "" valid, else a substring of the error
	}{
		{"private virtual over a private member", repos, ""},
		{"public virtual over a private member", repos + "public = true\n",
			"x.toml:21: repo[3].public: virtual repository all is public but its member nix-local is not: make nix-local public or all private"},
		{"public virtual over public members", strings.Replace(repos, `members = ["nix-local", "pub"]`, `members = ["pub", "up"]`, 1) + "public = true\n", ""},
		{"incoming into a virtual repository", repos + `incoming = ["file:///in"]` + "\n",
			"repo[3].incoming: repository all is a virtual repository: ingest into a local repository"},
		{"incoming into a remote repository", strings.Replace(repos, "name = \"up\"\ntype = \"remote\"\n", "name = \"up\"\ntype = \"remote\"\nincoming = [\"file:///in\"]\n", 1),
			"repo[2].incoming: repository up is a remote repository: ingest into a local repository"},
		{"token reads a virtual repository but not its private member", repos + token + `read = ["all"]` + "\n",
			"token[0].read: token ci may read virtual repository all but not its member nix-local: add nix-local to read"},
		{"token reads a virtual repository and its members", repos + token + `read = ["all", "nix-local"]` + "\n", ""},
		{"token writes a member and reads the virtual repository", repos + token + `read = ["all"]` + "\nwrite = [\"nix-local\"]\n", ""},
		{"token reads everything", repos + token + `read = ["*"]` + "\n", ""},
		{"token writes to a virtual repository", repos + token + `read = ["*"]` + "\nwrite = [\"all\"]\n",
			"token[0].write: all is a virtual repository, which takes no uploads"},
		{"site lists a private repository", repos + "[site]\nrepos = [\"pub\", \"nix-local\"]\n",
			"site.repos[1]: repository nix-local is not public: the site would show its packages and store paths to anyone; set [site] include_private = true"},
		{"site lists a private repository explicitly included", repos + "[site]\nrepos = [\"nix-local\"]\ninclude_private = true\n", ""},
		{"site lists an unknown repository", repos + "[site]\nrepos = [\"nope\"]\n", `site.repos[0]: no repository "nope"`},
		{"search limits", repos + "[search]\nmax_query_length = 1000\nmax_terms = 32\n", ""},
		{"negative search limit", repos + "[search]\nmax_query_length = -1\n", "search.max_query_length: must be ≥ 0"},
		{"unknown search key", repos + "[search]\nmax_length = 1\n", "search.max_length: unknown key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tc.toml), "x.toml", "/d")
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("accepted:\n%s", tc.toml)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestSiteReposArePublicByDefault(t *testing.T) {
	tests := []struct {
		site string
		want []string
	}{
		{"", []string{"pub", "up"}},
		{"[site]\ninclude_private = true\n", []string{"nix-local", "pub", "up", "all"}},
		{"[site]\nrepos = [\"up\"]\n", []string{"up"}},
		{"[site]\nrepos = [\"all\"]\ninclude_private = true\n", []string{"all"}},
	}
	for _, tc := range tests {
		c, err := config.Parse([]byte(repos+tc.site), "x.toml", "/d")
		if err != nil {
			t.Fatal(err)
		}
		if got := c.SiteRepos(); !slices.Equal(got, tc.want) {
			t.Errorf("%q: SiteRepos() = %v, want %v", tc.site, got, tc.want)
		}
	}
}

func TestIngestAndChannelTargetsRefuseWrongRepos(t *testing.T) {
	c, err := config.Parse([]byte(repos), "x.toml", "/d")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"nix-local": "", "pub": "", "up": "repository up is a remote repository: ingest into a local repository", "all": "repository all is a virtual repository: ingest into a local repository"} {
		r, _ := c.Repo(name)
		if err := r.IngestError(); (err == nil) != (want == "") || err != nil && !strings.Contains(err.Error(), want) {
			t.Errorf("IngestError(%s) = %v, want %q", name, err, want)
		}
	}
	for name, want := range map[string]string{"nix-local": "", "up": "", "all": "repository all is a virtual repository: push channels to a local repository"} {
		r, _ := c.Repo(name)
		if err := r.ChannelPushError(); (err == nil) != (want == "") || err != nil && !strings.Contains(err.Error(), want) {
			t.Errorf("ChannelPushError(%s) = %v, want %q", name, err, want)
		}
	}
}
