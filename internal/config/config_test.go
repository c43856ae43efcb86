package config_test

import (
	"strings"
	"testing"
	"time"

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

func TestInvalidConfigRefusedWithReason(t *testing.T) {
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
		{"wrong type", strings.Replace(valid, "priority = 30", `priority = "high"`, 1), "x.toml:7: repo[0].priority: expected integer, got string"},
		{"wrong type in second repo", valid + "[[repo]]\nname = \"b\"\ntype = \"local\"\npriority = \"low\"\n", "x.toml:12: repo[1].priority: expected integer, got string"},
		{"wrong type outside arrays", strings.Replace(valid, `url = "mem://"`, "url = 3", 1), "x.toml:3: store.url: expected string, got integer"},
		{"bad version", strings.Replace(valid, "version = 1", "version = 2", 1), "x.toml:1: version: unsupported version 2"},
		{"no version", strings.Replace(valid, "version = 1", "", 1), "version: missing"},
		{"bad repo name", strings.Replace(valid, `name = "a"`, `name = "_x"`, 1), `x.toml:5: repo[0].name: "_x" is not a valid repository name`},
		{"bad type", strings.Replace(valid, `type = "local"`, `type = "cloud"`, 1), `x.toml:6: repo[0].type: unknown repository type "cloud"`},
		{"duplicate repo", valid + "[[repo]]\nname = \"a\"\ntype = \"local\"\nsigning_key_file = \"b\"\n", `repo[1].name: repository "a" is configured twice`},
		{"missing key file", strings.Replace(valid, `signing_key_file = "a.sec"`, "", 1), "repo[0].signing_key_file: missing"},
		{"no store", "version = 1\n[[repo]]\nname = \"a\"\ntype = \"local\"\nsigning_key_file = \"k\"\n", "store.url: missing"},
		{"syntax", "version = \n", "x.toml:1"},
		{"negative priority", strings.Replace(valid, "priority = 30", "priority = -1", 1), "x.toml:7: repo[0].priority: must be ≥ 0"},
		{"per-token share above the total", valid + "[server]\nmax_uploads = 4\nmax_uploads_per_token = 5\n", "server.max_uploads_per_token: 5 is more than max_uploads (4)"},
		{"negative per-repository share", valid + "[server]\nmax_uploads_per_repo = -1\n", "server.max_uploads_per_repo: must be ≥ 1"},
		{"negative queue bound", valid + "[server]\nmax_queued_uploads_per_token = -1\n", "server.max_queued_uploads_per_token: must be ≥ 1"},
		{"bad rate", valid + "[server]\nupload_min_rate = \"fast\"\n", "bad rate"},
		{"negative rate", valid + "[server]\nupload_min_rate = -5\n", "server.upload_min_rate: must be positive"},
		{"bad queue timeout", valid + "[server]\nupload_queue_timeout = \"soon\"\n", "bad duration"},
		{"bad index interval", valid + "[server]\nindex_interval = \"often\"\n", "bad interval"},
		{"negative index interval", valid + "[server]\nindex_interval = \"-1s\"\n", "bad interval"},
		{"index interval too short", valid + "[server]\nindex_interval = \"10ms\"\n", "server.index_interval: must be 0 (off) or between 1s and 24h"},
		{"server_url not http", valid + "[site]\nserver_url = \"ftp://h\"\n", `site.server_url: "ftp://h" is not an http(s) URL`},
		{"server_url with credentials", valid + "[site]\nserver_url = \"https://u:p@h\"\n", "site.server_url"},
		{"unknown channels key", strings.Replace(valid, "[[repo]]", "[channels]\nmax_entries = 5\n[[repo]]", 1), "x.toml:5: channels.max_entries: unknown key"},
		{"memory limit too small", valid + "[server]\nmemory_limit = \"16MiB\"\n", "server.memory_limit: must be at least 64MiB"},
		{"negative tarball entries", strings.Replace(valid, "[[repo]]", "[channels]\nmax_tarball_entries = -1\n[[repo]]", 1), "x.toml:5: channels.max_tarball_entries: must be ≥ 0"},
		{"negative unpacks", strings.Replace(valid, "[[repo]]", "[channels]\nmax_concurrent_unpacks = -1\n[[repo]]", 1), "x.toml:5: channels.max_concurrent_unpacks: must be ≥ 0"},
		{"bad tarball size", strings.Replace(valid, "[[repo]]", "[channels]\nmax_tarball_unpacked_size = \"lots\"\n[[repo]]", 1), "bad size \"lots\""},
		{"temp_dir not a string", strings.Replace(valid, `url = "mem://"`, "url = \"mem://\"\ntemp_dir = 5", 1), "x.toml:4: store.temp_dir: expected string, got integer"},
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

// TestServerUploadLimits: the upload admission keys decode with their
// units ("64KiB/s", "90s").
func TestServerUploadLimits(t *testing.T) {
	c, err := config.Parse([]byte(valid+`[server]
max_uploads = 32
max_uploads_per_token = 8
max_uploads_per_repo = 16
max_queued_uploads_per_token = 100
upload_queue_timeout = "90s"
upload_timeout = "20m"
upload_min_rate = "1MiB/s"
`), "x.toml", "/d")
	if err != nil {
		t.Fatal(err)
	}
	s := c.Server
	if s.MaxUploads != 32 || s.MaxUploadsPerToken != 8 || s.MaxUploadsPerRepo != 16 || s.MaxQueuedUploadsPerToken != 100 ||
		time.Duration(s.UploadQueueTimeout) != 90*time.Second || time.Duration(s.UploadTimeout) != 20*time.Minute || s.UploadMinRate != 1<<20 {
		t.Errorf("decoded %+v", s)
	}
	for _, v := range []string{`"64KiB/s"`, `"64KiB"`, `65536`, `"64 KiB/s"`} {
		c, err := config.Parse([]byte(valid+"[server]\nupload_min_rate = "+v+"\n"), "x.toml", "/d")
		if err != nil || c.Server.UploadMinRate != 64<<10 {
			t.Errorf("upload_min_rate = %s: %v, %v", v, err, c)
		}
	}
}

// TestIndexInterval: 30 s by default, "0" turns the server's catalog
// updates off.
func TestIndexInterval(t *testing.T) {
	for v, want := range map[string]time.Duration{"": 30 * time.Second, `"0"`: 0, `"0s"`: 0, `"5s"`: 5 * time.Second, `"10m"`: 10 * time.Minute} {
		toml := valid
		if v != "" {
			toml += "[server]\nindex_interval = " + v + "\n"
		}
		c, err := config.Parse([]byte(toml), "x.toml", "/d")
		if err != nil || c.Server.IndexEvery() != want {
			t.Errorf("index_interval = %s: %v, %v", v, err, c)
		}
	}
}

// TestPublicServerURL: server_url, else an http(s) base_url, without the
// trailing slash.
func TestPublicServerURL(t *testing.T) {
	for _, tc := range []struct{ site, want string }{
		{"", ""},
		{`server_url = "https://nix.example.org/"`, "https://nix.example.org"},
		{"base_url = \"https://cache.example.org/\"\nserver_url = \"http://10.0.0.1:8080\"", "http://10.0.0.1:8080"},
		{`base_url = "https://cache.example.org/"`, "https://cache.example.org"},
		{`base_url = "file:///srv/bucket"`, ""},
	} {
		c, err := config.Parse([]byte(valid+"[site]\n"+tc.site+"\n"), "x.toml", "/d")
		if err != nil {
			t.Fatalf("%s: %v", tc.site, err)
		}
		if got := c.PublicServerURL(); got != tc.want {
			t.Errorf("%s: PublicServerURL() = %q, want %q", tc.site, got, tc.want)
		}
	}
}

// FuzzRate: the rate decoder never panics, and "/s" changes nothing.
func FuzzRate(f *testing.F) {
	f.Add("64KiB/s")
	f.Add("1.5MB")
	f.Fuzz(func(t *testing.T, s string) {
		var a, b config.Rate
		ea, eb := a.UnmarshalTOML(s), b.UnmarshalTOML(s+"/s")
		if ea == nil && !strings.HasSuffix(strings.TrimSpace(s), "/s") && (eb != nil || a != b) {
			t.Fatalf("%q = %d but %q = %d, %v", s, a, s+"/s", b, eb)
		}
	})
}

// TestChannelLimitsAndTempDir: [channels] limits decode with units,
// [store] temp_dir resolves against the config's folder, and both default
// to zero values (the stages' defaults; the command layer's temp folder).
func TestChannelLimitsAndTempDir(t *testing.T) {
	c, err := config.Parse([]byte(strings.Replace(valid, "[[repo]]", "[channels]\nmax_tarball_entries = 500000\nmax_tarball_unpacked_size = \"4GiB\"\nmax_tarball_size = \"1GiB\"\nmax_concurrent_unpacks = 3\n[[repo]]", 1)+""), "x.toml", "/d")
	if err != nil {
		t.Fatal(err)
	}
	if c.Channels.MaxTarballEntries != 500000 || c.Channels.MaxTarballUnpackedSize != 4<<30 || c.Channels.MaxTarballSize != 1<<30 || c.Channels.MaxConcurrentUnpacks != 3 {
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

func TestRepoLookupRefusesUnknownName(t *testing.T) {
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
