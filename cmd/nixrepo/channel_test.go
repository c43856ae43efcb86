package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ulikunitz/xz"

	"github.com/nixrepo/nixrepo/internal/nixtest"
)

// writeChannelTarball writes a tiny channel whose default.nix exposes a
// value and a derivation.
func writeChannelTarball(t *testing.T, path, top, greeting string) {
	t.Helper()
	files := map[string]string{
		top + "/default.nix": fmt.Sprintf(`{ ... }: {
  greeting = %q;
  hello = derivation {
    name = "hello-%s";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" "echo %s > $out" ];
  };
}
`, greeting, greeting, greeting),
		// A fresh nonce per run: otherwise the fixed-output path of an earlier
		// run already exists and Nix would not fetch anything.
		top + "/.version": fmt.Sprintf("%s %d\n", greeting, time.Now().UnixNano()),
	}
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: top + "/", Typeflag: tar.TypeDir, Mode: 0o755})
	for _, name := range []string{top + "/.version", top + "/default.nix"} {
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(files[name]))})
		tw.Write([]byte(files[name]))
	}
	tw.Close()
	var out bytes.Buffer
	w, _ := xz.NewWriter(&out)
	w.Write(tb.Bytes())
	w.Close()
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestChannelsWithNix is the channels acceptance test: two snapshots of a
// tiny channel; nix-channel --add/--update through the server and through a
// plain static file server over the bucket sees the second; fetchTarball
// with the printed sha256 of the first still evaluates to the first.
func TestChannelsWithNix(t *testing.T) {
	env := nixtest.Require(t)
	dir := t.TempDir()
	// The server's public URL (for the Link header of channel
	// redirects) is where it will listen.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := `version = 1
[store]
url = "file://./store"
[site]
server_url = "http://` + ln.Addr().String() + `"
[[repo]]
name = "nix-local"
type = "local"
signing_key_file = "k.sec"
generate_key = true
public = true
`
	os.WriteFile(filepath.Join(dir, "nixrepo.toml"), []byte(cfg), 0o644)
	for i, g := range []string{"one", "two"} {
		tb := filepath.Join(dir, g+".tar.xz")
		writeChannelTarball(t, tb, "team-"+g, g)
		mustRun(t, dir, "channel", "push", "--repo", "nix-local", "--channel", "team", "--flavor", "nixpkgs",
			"--snapshot", fmt.Sprintf("%d.0", i+1), tb)
	}

	_, hs := serveDirOn(t, dir, ln, nil)
	static := httptest.NewServer(http.FileServer(http.Dir(filepath.Join(dir, "store"))))
	defer static.Close()

	// The printed pins.
	var views []channelView
	out := mustRun(t, dir, "--json", "channel", "show", "--repo", "nix-local", "--channel", "team", "--url", hs.URL)
	if err := json.Unmarshal([]byte(out), &views); err != nil || len(views) != 1 || len(views[0].Snapshots) != 2 {
		t.Fatalf("channel show: %v\n%s", err, out)
	}
	first := views[0].Snapshots[1]
	if first.ID != "1.0" || views[0].Latest != "2.0" {
		t.Fatalf("unexpected order: %+v", views[0])
	}
	text := mustRun(t, dir, "setmeup", "--repo", "nix-local", "--channel", "team", "--url", hs.URL)
	for _, want := range []string{"nix-channel --add " + hs.URL + "/api/nix/nix-local/channels/team team", first.NarHash, first.URL} {
		if !strings.Contains(text, want) {
			t.Errorf("setmeup --channel lacks %q:\n%s", want, text)
		}
	}

	eval := func(expr string) string {
		t.Helper()
		return env.Run(t, "nix-instantiate", "--eval", "--json", "-E", expr)
	}
	for _, tc := range []struct{ alias, url string }{
		{fmt.Sprintf("nixrepo-srv-%d", os.Getpid()), hs.URL + "/api/nix/nix-local/channels/team"},
		{fmt.Sprintf("nixrepo-static-%d", os.Getpid()), static.URL + "/nix-local/channels/team/nixexprs.tar.xz"},
	} {
		env.Run(t, "nix-channel", "--add", tc.url, tc.alias)
		t.Cleanup(func() { env.RunErr("nix-channel", "--remove", tc.alias) })
		env.Run(t, "nix-channel", "--update", tc.alias)
		if got := eval(fmt.Sprintf("(import <%s> {}).greeting", tc.alias)); got != `"two"` {
			t.Errorf("%s: channel evaluates to %s, want the second snapshot", tc.url, got)
		}
		if got := eval(fmt.Sprintf("(import <%s> {}).hello.name", tc.alias)); got != `"hello-two"` {
			t.Errorf("%s: derivation name %s", tc.url, got)
		}
	}
	// Pinning: the first snapshot, by its immutable URL and printed sha256,
	// on the server and on static hosting.
	for _, u := range []string{first.URL, first.StaticURL} {
		u = strings.Replace(u, hs.URL+"/nix-local", static.URL+"/nix-local", 1)
		got := eval(fmt.Sprintf(`(import (builtins.fetchTarball { url = %q; sha256 = %q; }) {}).greeting`, u, first.NarHash))
		if got != `"one"` {
			t.Errorf("fetchTarball %s = %s, want the first snapshot", u, got)
		}
	}
	// A wrong sha256 must fail: the pin is really checked. (Not the first
	// snapshot's hash: its store path now exists, so Nix would not fetch.)
	if _, _, err := env.RunErr("nix-instantiate", "--eval", "-E", fmt.Sprintf(`(import (builtins.fetchTarball { url = %q; sha256 = %q; }) {}).greeting`,
		views[0].Snapshots[0].URL, strings.Repeat("0", 52))); err == nil {
		t.Error("fetchTarball accepted the wrong sha256")
	}
	// The mutable URL advertises the immutable one (lockable tarball protocol).
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(hs.URL + "/api/nix/nix-local/channels/team/nixexprs.tar.xz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Link") != "<"+hs.URL+`/api/nix/nix-local/channels/team/nixpkgs/2.0/nixexprs.tar.xz>; rel="immutable"` || resp.Header.Get("ETag") == "" {
		t.Fatalf("mutable channel URL: %d %v", resp.StatusCode, resp.Header)
	}
}

// writeTar writes an xz tarball of the given headers (a regular file's body
// is Size bytes of 'x').
func writeTar(t *testing.T, path string, hdrs ...*tar.Header) {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write(bytes.Repeat([]byte{'x'}, int(h.Size)))
		}
	}
	tw.Close()
	var out bytes.Buffer
	w, _ := xz.NewWriter(&out)
	w.Write(tb.Bytes())
	w.Close()
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestChannelPushRefusesUnsafeTarball: channel push of a tarball that would
// write through a symlink, or is past a [channels] limit, prints one line
// naming the reason, exits 1, publishes nothing and writes nothing outside
// its folders.
func TestChannelPushRefusesUnsafeTarball(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(victim, []byte("untouched"), 0o644)
	cfg := `version = 1
[store]
url = "file://./store"
[channels]
max_tarball_entries = 5
max_tarball_unpacked_size = "64KiB"
[[repo]]
name = "nix-local"
type = "local"
signing_key_file = "k.sec"
generate_key = true
`
	os.WriteFile(filepath.Join(dir, "nixrepo.toml"), []byte(cfg), 0o644)
	top := []*tar.Header{{Name: "top/", Typeflag: tar.TypeDir, Mode: 0o755}, {Name: "top/default.nix", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2}}
	tests := []struct {
		name  string
		extra []*tar.Header
		want  string
	}{
		{"file through a symlink", []*tar.Header{{Name: "top/x", Typeflag: tar.TypeSymlink, Linkname: victim}, {Name: "top/x", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5}},
			`nixexprs.tar.xz is not a usable channel tarball: entry "top/x" replaces the earlier symlink "top/x"`},
		{"too many entries", []*tar.Header{{Name: "top/a", Typeflag: tar.TypeReg, Size: 1}, {Name: "top/b", Typeflag: tar.TypeReg, Size: 1}, {Name: "top/c", Typeflag: tar.TypeReg, Size: 1}, {Name: "top/d", Typeflag: tar.TypeReg, Size: 1}},
			"the tarball has more than 5 entries (max_tarball_entries)"},
		{"unpacks too large", []*tar.Header{{Name: "top/big", Typeflag: tar.TypeReg, Size: 100 << 10}},
			"the tarball unpacks to more than 65536 bytes (max_tarball_unpacked_size)"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := filepath.Join(dir, fmt.Sprintf("bad%d.tar.xz", i))
			writeTar(t, tb, append(append([]*tar.Header{}, top...), tc.extra...)...)
			out, errs, code := nixrepo(t, dir, "channel", "push", "--repo", "nix-local", "--channel", "team", "--snapshot", "1", tb)
			if code != 1 || out != "" || strings.Count(errs, "\n") != 1 || !strings.HasPrefix(errs, "nixrepo: channel push: ") || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit 1 and one line with %q", code, out, errs, tc.want)
			}
			if b, _ := os.ReadFile(victim); string(b) != "untouched" {
				t.Fatalf("channel push wrote through the symlink: %q", b)
			}
			if _, err := os.Stat(filepath.Join(dir, "store", "nix-local", "channels")); !os.IsNotExist(err) {
				t.Fatalf("a refused push left channels/: %v", err)
			}
		})
	}
}

// TestMirrorChannelsReportsUnsafeTarball: mirror channels of an upstream
// release whose tarball would write through a symlink exits 1 with one
// line naming the repository, the channel, the release and the reason.
func TestMirrorChannelsReportsUnsafeTarball(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(victim, []byte("untouched"), 0o644)
	tb := filepath.Join(dir, "attack.tar.xz")
	writeTar(t, tb, &tar.Header{Name: "nixos/default.nix", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2},
		&tar.Header{Name: "nixos/x", Typeflag: tar.TypeSymlink, Linkname: victim}, &tar.Header{Name: "nixos/x", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5})
	attack, _ := os.ReadFile(tb)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/nixos-25.11":
			http.Redirect(w, r, "/rel/nixos-25.11.1.abcdef", http.StatusFound)
		case "/rel/nixos-25.11.1.abcdef":
			fmt.Fprint(w, "release")
		case "/rel/nixos-25.11.1.abcdef/nixexprs.tar.xz":
			w.Write(attack)
		default:
			http.NotFound(w, r)
		}
	}))
	defer up.Close()
	cfg := fmt.Sprintf(`version = 1
[store]
url = "file://./store"
[[repo]]
name = "upstream"
type = "remote"
upstream = %q
trusted_keys = ["cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="]
channels_upstream = %q
channels = ["nixos-25.11"]
`, up.URL, up.URL)
	os.WriteFile(filepath.Join(dir, "nixrepo.toml"), []byte(cfg), 0o644)
	_, errs, code := nixrepo(t, dir, "mirror", "channels")
	want := `repository upstream: mirror nixos-25.11: release nixos-25.11.1.abcdef: upload does not verify: nixexprs.tar.xz is not a usable channel tarball: entry "nixos/x" replaces the earlier symlink "nixos/x"`
	if code != 1 || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, want) {
		t.Fatalf("exit %d, stderr %q; want exit 1 and one line with %q", code, errs, want)
	}
	if b, _ := os.ReadFile(victim); string(b) != "untouched" {
		t.Fatalf("mirroring wrote through the symlink: %q", b)
	}
}

// TestSnapshotTarballRevalidatedByETag: an immutable snapshot tarball
// carries an ETag (its sha256), so when Nix's tarball-ttl has expired a
// fetchTarball of it asks again with If-None-Match and the server answers
// 304 instead of sending the tarball again.
func TestSnapshotTarballRevalidatedByETag(t *testing.T) {
	env := nixtest.Require(t)
	dir := t.TempDir()
	siteConfig(t, dir)
	tb := filepath.Join(dir, "one.tar.xz")
	writeChannelTarball(t, tb, "team-one", fmt.Sprintf("etag-%d", os.Getpid()))
	mustRun(t, dir, "channel", "push", "--repo", "nix-local", "--channel", "team", "--flavor", "nixpkgs", "--snapshot", "1.0", tb)
	var revalidated atomic.Int32
	var etag atomic.Value
	_, hs := serveDirOn(t, dir, nil, func(w http.ResponseWriter, r *http.Request) {
		if inm := r.Header.Get("If-None-Match"); inm != "" && strings.HasSuffix(r.URL.Path, "/1.0/nixexprs.tar.xz") {
			etag.Store(inm)
			revalidated.Add(1)
		}
	})
	u := hs.URL + "/api/nix/nix-local/channels/team/nixpkgs/1.0/nixexprs.tar.xz"
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := resp.Header.Get("ETag")
	if want == "" || !strings.HasPrefix(want, `"sha256-`) {
		t.Fatalf("snapshot tarball ETag = %q", want)
	}
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("If-None-Match", want)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match with the ETag: %d, want 304", resp.StatusCode)
	}
	revalidated.Store(0)
	expr := fmt.Sprintf(`(import (builtins.fetchTarball %q) {}).greeting`, u)
	for i := 0; i < 2; i++ {
		env.Run(t, "nix-instantiate", "--option", "tarball-ttl", "0", "--eval", "-E", expr)
	}
	if revalidated.Load() == 0 || etag.Load() != want {
		t.Errorf("Nix %s did not revalidate the expired tarball with its ETag (%d conditional requests, If-None-Match %v)", env.Version(), revalidated.Load(), etag.Load())
	}
}

// TestChannelSnapshotsInChannelOrder: channel show, the catalog and the
// site list snapshots in the channel's own order (Nix's version order of
// their IDs), not by upload: 1.2 uploaded last is listed last.
func TestChannelSnapshotsInChannelOrder(t *testing.T) {
	dir := t.TempDir()
	siteConfig(t, dir)
	for _, id := range []string{"1.9", "1.10", "1.2"} {
		tb := filepath.Join(dir, id+".tar.xz")
		writeChannelTarball(t, tb, "team-"+id, id)
		mustRun(t, dir, "channel", "push", "--repo", "nix-local", "--channel", "team", "--flavor", "nixpkgs", "--snapshot", id, tb)
	}
	var views []channelView
	out := mustRun(t, dir, "--json", "channel", "show", "--repo", "nix-local", "--channel", "team", "--url", "https://h")
	if err := json.Unmarshal([]byte(out), &views); err != nil || len(views) != 1 {
		t.Fatalf("channel show: %v\n%s", err, out)
	}
	var got []string
	for _, s := range views[0].Snapshots {
		got = append(got, s.ID)
	}
	if strings.Join(got, " ") != "1.10 1.9 1.2" || views[0].Latest != "1.10" {
		t.Errorf("channel show lists %v (latest %s), want 1.10 1.9 1.2 (latest 1.10)", got, views[0].Latest)
	}
	// The site's channel page, written by the pushes, in the same order.
	page, err := os.ReadFile(filepath.Join(dir, "store", "_site", "channels.html"))
	if err != nil {
		t.Fatal(err)
	}
	i10, i9, i2 := strings.Index(string(page), ">1.10<"), strings.Index(string(page), ">1.9<"), strings.Index(string(page), ">1.2<")
	if i10 < 0 || i9 < 0 || i2 < 0 || !(i10 < i9 && i9 < i2) {
		t.Errorf("the site's channel page lists 1.10 at %d, 1.9 at %d, 1.2 at %d; want that order", i10, i9, i2)
	}
}
