package config_test

import (
	"strings"
	"testing"

	nixrepo "github.com/nixrepo/nixrepo"
	"github.com/nixrepo/nixrepo/internal/config"
)

func TestDefaultConfigIsValid(t *testing.T) {
	c, err := config.Parse(nixrepo.DefaultConfig, "nixrepo.toml", "/srv")
	if err != nil {
		t.Fatal(err)
	}
	if c.Store.URL != "file://./var/store" || len(c.Repos) != 1 || c.Repos[0].Name != "nix-local" {
		t.Fatalf("unexpected default: %+v", c)
	}
	if got := c.Path(c.Repos[0].SigningKeyFile); got != "/srv/var/keys/nix-local.sec" {
		t.Errorf("key path = %s", got)
	}
}

const valid = `version = 1
[store]
url = "mem://"
[[repo]]
name = "a"
type = "local"
priority = 30
signing_key_file = "a.sec"
`

func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		toml string
		want string // substring of the error
	}{
		{"unknown top key", "colour = 1\n" + valid, "x.toml:1: colour: unknown key"},
		{"unknown key after repo belongs to it", valid + "colour = 1\n", "x.toml:9: repo[0].colour: unknown key"},
		{"unknown repo key", valid + "prioritee = 3\n", "x.toml:9: repo[0].prioritee: unknown key"},
		{"unknown key in second repo", valid + "[[repo]]\nname = \"b\"\ntype = \"local\"\nsigning_key_file = \"b\"\ntypo = 1\n", "x.toml:13: repo[1].typo: unknown key"},
		{"unknown store key", strings.Replace(valid, `url = "mem://"`, "url = \"mem://\"\nbucket = \"x\"", 1), "x.toml:4: store.bucket: unknown key"},
		{"wrong type", strings.Replace(valid, "priority = 30", `priority = "high"`, 1), "x.toml:7: repo.priority: expected integer, got string"},
		{"bad version", strings.Replace(valid, "version = 1", "version = 2", 1), "x.toml:1: version: unsupported version 2"},
		{"no version", strings.Replace(valid, "version = 1", "", 1), "version: missing"},
		{"bad repo name", strings.Replace(valid, `name = "a"`, `name = "_x"`, 1), `x.toml:5: repo[0].name: "_x" is not a valid repository name`},
		{"bad type", strings.Replace(valid, `type = "local"`, `type = "cloud"`, 1), `x.toml:6: repo[0].type: unknown repository type "cloud"`},
		{"duplicate repo", valid + "[[repo]]\nname = \"a\"\ntype = \"local\"\nsigning_key_file = \"b\"\n", `repo[1].name: repository "a" is configured twice`},
		{"missing key file", strings.Replace(valid, `signing_key_file = "a.sec"`, "", 1), "repo[0].signing_key_file: missing"},
		{"no store", "version = 1\n[[repo]]\nname = \"a\"\ntype = \"local\"\nsigning_key_file = \"k\"\n", "store.url: missing"},
		{"syntax", "version = \n", "x.toml:1"},
		{"negative priority", strings.Replace(valid, "priority = 30", "priority = -1", 1), "x.toml:7: repo[0].priority: must be ≥ 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tc.toml), "x.toml", "/d")
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.toml)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestRepoLookup(t *testing.T) {
	c, err := config.Parse([]byte(valid), "x.toml", "/d")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Repo("a"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Repo("zz"); err == nil || !strings.Contains(err.Error(), `no repository "zz"`) {
		t.Fatalf("Repo(zz) = %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(valid))
	f.Add(nixrepo.DefaultConfig)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.Parse(data, "f.toml", "/d")
		if err == nil && (c.Version != config.Version || len(c.Repos) == 0) {
			t.Fatalf("accepted an invalid config: %+v", c)
		}
	})
}

// TestServerDecodeLimits: the decoding limits of [server] parse as sizes
// and are checked.
func TestServerDecodeLimits(t *testing.T) {
	c, err := config.Parse([]byte(valid+"[server]\nmax_nar_size = \"100GiB\"\nmax_decoder_memory = \"64MiB\"\nmax_listing_size = \"32MiB\"\n"), "x.toml", "/d")
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.MaxNarSize != 100<<30 || c.Server.MaxDecoderMemory != 64<<20 || c.Server.MaxListingSize != 32<<20 {
		t.Errorf("parsed %+v", c.Server)
	}
	for _, tc := range []struct{ line, want string }{
		{`max_decoder_memory = "512KiB"`, "server.max_decoder_memory: must be at least 1MiB"},
		{`max_listing_size = "2GiB"`, "server.max_listing_size: must be between 0"},
		{`max_nar_size = -1`, "server.max_nar_size: must be positive"},
	} {
		_, err := config.Parse([]byte(valid+"[server]\n"+tc.line+"\n"), "x.toml", "/d")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.line, err, tc.want)
		}
	}
}
