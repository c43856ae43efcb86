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
		{"unknown channels key", strings.Replace(valid, "[[repo]]", "[channels]\nmax_entries = 5\n[[repo]]", 1), "x.toml:5: channels.max_entries: unknown key"},
		{"negative tarball entries", strings.Replace(valid, "[[repo]]", "[channels]\nmax_tarball_entries = -1\n[[repo]]", 1), "x.toml:5: channels.max_tarball_entries: must be ≥ 0"},
		{"bad tarball size", strings.Replace(valid, "[[repo]]", "[channels]\nmax_tarball_unpacked_size = \"lots\"\n[[repo]]", 1), "bad size \"lots\""},
		{"temp_dir not a string", strings.Replace(valid, `url = "mem://"`, "url = \"mem://\"\ntemp_dir = 5", 1), "x.toml:4: store.temp_dir: expected string, got int64"},
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

// TestChannelLimitsAndTempDir: [channels] limits decode with units,
// [store] temp_dir resolves against the config's folder, and both default
// to zero values (the stages' defaults; the command layer's temp folder).
func TestChannelLimitsAndTempDir(t *testing.T) {
	c, err := config.Parse([]byte(strings.Replace(valid, "[[repo]]", "[channels]\nmax_tarball_entries = 500000\nmax_tarball_unpacked_size = \"4GiB\"\n[[repo]]", 1)+""), "x.toml", "/d")
	if err != nil {
		t.Fatal(err)
	}
	if c.Channels.MaxTarballEntries != 500000 || c.Channels.MaxTarballUnpackedSize != 4<<30 {
		t.Fatalf("channels = %+v", c.Channels)
	}
	c, err = config.Parse([]byte(strings.Replace(valid, `url = "mem://"`, "url = \"mem://\"\ntemp_dir = \"var/tmp\"", 1)), "x.toml", "/d")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Path(c.Store.TempDir); got != "/d/var/tmp" {
		t.Fatalf("temp_dir resolves to %q", got)
	}
	c, err = config.Parse([]byte(valid), "x.toml", "/d")
	if err != nil {
		t.Fatal(err)
	}
	if c.Channels != (config.Channels{}) || c.Store.TempDir != "" {
		t.Fatalf("defaults: channels %+v, temp_dir %q", c.Channels, c.Store.TempDir)
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
