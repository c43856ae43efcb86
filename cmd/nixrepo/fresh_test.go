package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// siteConfig writes a nixrepo.toml: one public local repository on a
// folder bucket, the site on, the search index in dir/index.
func siteConfig(t *testing.T, dir string) {
	t.Helper()
	t.Setenv(indexDirEnv, filepath.Join(dir, "index"))
	cfg := `version = 1
[store]
url = "file://./store"
[[repo]]
name = "nix-local"
type = "local"
signing_key_file = "k.sec"
generate_key = true
public = true
`
	if err := os.WriteFile(filepath.Join(dir, "nixrepo.toml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
}

func channelsPage(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "store", "_site", "channels.html"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// After "channel push", the site's channel page in the bucket names the
// new snapshot, without a publish; with --no-site it does not, until a
// publish alone (no index command) brings it up to date.
func TestChannelPushUpdatesSite(t *testing.T) {
	dir := t.TempDir()
	siteConfig(t, dir)
	push := func(id string, extra ...string) string {
		t.Helper()
		tb := filepath.Join(dir, id+".tar.xz")
		writeChannelTarball(t, tb, "team-"+id, "g"+strings.ReplaceAll(id, ".", ""))
		args := append([]string{"channel", "push", "--repo", "nix-local", "--channel", "team", "--snapshot", id}, extra...)
		start := time.Now()
		out := mustRun(t, dir, append(args, tb)...)
		t.Logf("channel push %s %v: %v\n%s", id, extra, time.Since(start).Round(time.Millisecond), out)
		return out
	}
	out := push("1.0")
	if !strings.Contains(out, "site: catalog generation 1") {
		t.Errorf("push output lacks the site line:\n%s", out)
	}
	if page := channelsPage(t, dir); !strings.Contains(page, "team") || !strings.Contains(page, "1.0") {
		t.Fatalf("channels.html after the first push lacks the snapshot:\n%s", page)
	}
	push("2.0")
	if page := channelsPage(t, dir); !strings.Contains(page, "2.0") {
		t.Fatalf("channels.html after the second push lacks snapshot 2.0:\n%s", page)
	}

	out = push("3.0", "--no-site")
	if strings.Contains(out, "site:") || strings.Contains(channelsPage(t, dir), "3.0") {
		t.Fatalf("push --no-site updated the site:\n%s", out)
	}
	out = mustRun(t, dir, "publish")
	if !strings.Contains(out, "index: updated") {
		t.Errorf("publish did not update the catalog:\n%s", out)
	}
	if page := channelsPage(t, dir); !strings.Contains(page, "3.0") {
		t.Fatalf("channels.html after publish lacks snapshot 3.0:\n%s", page)
	}
}
