package channel_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/ulikunitz/xz"

	"github.com/nixrepo/nixrepo/ingest"
	"github.com/nixrepo/nixrepo/ingest/channel"
	"github.com/nixrepo/nixrepo/internal/store"
)

// tarEntry is one member of a test tarball.
type tarEntry struct {
	name, body, link string
	dir, exec        bool
	typ              byte
}

func makeTar(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644}
		switch {
		case e.typ != 0:
			h.Typeflag = e.typ
		case e.dir:
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		case e.link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.link
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.body))
			if e.exec {
				h.Mode = 0o755
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func xzBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := xz.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// channelTarball is a valid channel: one top directory with default.nix.
func channelTarball(t *testing.T, top, value string) []byte {
	return xzBytes(t, makeTar(t,
		tarEntry{name: top + "/", dir: true},
		tarEntry{name: top + "/default.nix", body: fmt.Sprintf("{ ... }: { value = %q; }\n", value)},
		tarEntry{name: top + "/lib/", dir: true},
		tarEntry{name: top + "/lib/tool.sh", body: "#!/bin/sh\necho hi\n", exec: true},
		tarEntry{name: top + "/nixpkgs", link: "."},
	))
}

func push(t *testing.T, repo *store.Cache, data []byte, o channel.PushOptions) (*channel.PushResult, error) {
	t.Helper()
	if o.Channel == "" {
		o.Channel = "team"
	}
	if o.Flavor == "" {
		o.Flavor = "nixpkgs"
	}
	return channel.Push(context.Background(), repo, bytes.NewReader(data), o)
}

func TestPushChannelSnapshotsImmutableAndForwardOnly(t *testing.T) {
	st := memStore(t)
	repo := st.Repo("r")
	ctx := context.Background()
	v1 := channelTarball(t, "team-1.0", "one")
	res, err := push(t, repo, v1, channel.PushOptions{Snapshot: "1.0", Extra: map[string][]byte{"git-revision": []byte("abc123\n")}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.Latest != "1.0" || !res.Moved || len(res.Snapshot.NarHash) != 52 || res.Snapshot.GitRevision != "abc123" {
		t.Fatalf("%+v", res)
	}
	// Immutable: same bytes is a no-op, different bytes a conflict.
	if res, err := push(t, repo, v1, channel.PushOptions{Snapshot: "1.0"}); err != nil || res.Created || res.Moved {
		t.Fatalf("identical re-push: %+v %v", res, err)
	}
	if _, err := push(t, repo, channelTarball(t, "team-1.0", "other"), channel.PushOptions{Snapshot: "1.0"}); !errors.Is(err, ingest.ErrConflict) {
		t.Fatalf("different bytes under the same ID: %v", err)
	}
	// Forward only, by version order.
	v2 := channelTarball(t, "team-2.0", "two")
	if res, err := push(t, repo, v2, channel.PushOptions{Snapshot: "2.0"}); err != nil || res.Latest != "2.0" {
		t.Fatalf("newer snapshot: %+v %v", res, err)
	}
	if res, err := push(t, repo, channelTarball(t, "team-1.5", "x"), channel.PushOptions{Snapshot: "1.5"}); err != nil || res.Latest != "2.0" || res.Moved {
		t.Fatalf("older snapshot moved the channel: %+v %v", res, err)
	}
	if res, err := push(t, repo, channelTarball(t, "team-1.5", "x"), channel.PushOptions{Snapshot: "1.5", Force: true}); err != nil || res.Latest != "1.5" {
		t.Fatalf("--force: %+v %v", res, err)
	}
	// The mutable tarball is the current snapshot's.
	latest, err := st.Get(ctx, "r/channels/team/nixexprs.tar.xz")
	if err != nil || !bytes.Equal(latest, channelTarball(t, "team-1.5", "x")) {
		t.Fatalf("latest tarball: %v", err)
	}
	ch, err := repo.ReadChannel(ctx, "team")
	if err != nil || len(ch.Snapshots) != 3 || ch.Latest != "1.5" {
		t.Fatalf("%+v %v", ch, err)
	}
	if names, _ := repo.ListChannels(ctx); len(names) != 1 || names[0] != "team" {
		t.Fatalf("ListChannels = %v", names)
	}
}

func TestPushChannelUploadOrder(t *testing.T) {
	repo := memStore(t).Repo("r")
	for _, id := range []string{"beta", "alpha"} {
		if _, err := push(t, repo, channelTarball(t, id, id), channel.PushOptions{Snapshot: id}); err != nil {
			t.Fatal(err)
		}
	}
	ch, _ := repo.ReadChannel(context.Background(), "team")
	if ch.Latest != "alpha" {
		t.Fatalf("IDs without numbers follow upload order; latest = %s", ch.Latest)
	}
}

func TestPushChannelRefusals(t *testing.T) {
	good := channelTarball(t, "top", "v")
	tests := []struct {
		name string
		data []byte
		o    channel.PushOptions
		want string
	}{
		{"not xz", makeTar(t, tarEntry{name: "top/default.nix", body: "1"}), channel.PushOptions{}, "xz"},
		{"xz of a non-tar", xzBytes(t, []byte("hello, this is not a tar archive at all; definitely not 512 bytes of header")), channel.PushOptions{}, "tar"},
		{"two top-level dirs", xzBytes(t, makeTar(t, tarEntry{name: "a/default.nix", body: "1"}, tarEntry{name: "b/default.nix", body: "1"})), channel.PushOptions{}, "more than one top-level entry"},
		{"no default.nix", xzBytes(t, makeTar(t, tarEntry{name: "a/other.nix", body: "1"})), channel.PushOptions{}, "no default.nix"},
		{"top-level file", xzBytes(t, makeTar(t, tarEntry{name: "default.nix", body: "1"})), channel.PushOptions{}, "is a file"},
		{"truncated", good[:len(good)/2], channel.PushOptions{}, "xz"},
		{"escaping entry", xzBytes(t, makeTar(t, tarEntry{name: "top/default.nix", body: "1"}, tarEntry{name: "top/../../etc/x", body: "1"})), channel.PushOptions{}, "escapes"},
		{"through a symlink", xzBytes(t, makeTar(t, tarEntry{name: "top/default.nix", body: "1"}, tarEntry{name: "top/l", link: "/tmp"}, tarEntry{name: "top/l/x", body: "1"})), channel.PushOptions{}, "below the symlink"},
		{"device file", xzBytes(t, makeTar(t, tarEntry{name: "top/default.nix", body: "1"}, tarEntry{name: "top/dev", typ: tar.TypeChar})), channel.PushOptions{}, "unsupported type"},
		{"traversal in channel", good, channel.PushOptions{Channel: "../x"}, "channel name"},
		{"traversal in snapshot", good, channel.PushOptions{Snapshot: ".."}, "snapshot ID"},
		{"slash in snapshot", good, channel.PushOptions{Snapshot: "a/b"}, "snapshot ID"},
		{"bad flavor", good, channel.PushOptions{Flavor: "guix"}, "flavor"},
		{"extra file name", good, channel.PushOptions{Extra: map[string][]byte{"evil.sh": nil}}, "not \"evil.sh\""},
		{"too large", good, channel.PushOptions{MaxSize: 10}, "larger than allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := memStore(t)
			if tc.o.Snapshot == "" {
				tc.o.Snapshot = "1"
			}
			_, err := push(t, st.Repo("r"), tc.data, tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if k := keys(t, st, ""); len(k) != 0 {
				t.Fatalf("refused push left %v", k)
			}
		})
	}
}

func TestChannelRetentionKeepsPinnedAndNewest(t *testing.T) {
	st := memStore(t)
	repo := st.Repo("r")
	for i := 1; i <= 5; i++ {
		id := fmt.Sprintf("%d.0", i)
		if _, err := push(t, repo, channelTarball(t, "t", id), channel.PushOptions{Snapshot: id, Keep: 2, Pins: []string{"team/1.0"}}); err != nil {
			t.Fatal(err)
		}
	}
	ch, _ := repo.ReadChannel(context.Background(), "team")
	var ids []string
	for _, s := range ch.Snapshots {
		ids = append(ids, s.ID)
	}
	if strings.Join(ids, " ") != "1.0 4.0 5.0" || ch.Latest != "5.0" {
		t.Fatalf("kept %v (latest %s); want the pinned 1.0 plus the newest two", ids, ch.Latest)
	}
	for _, k := range keys(t, st, "r/channels/team/nixpkgs/") {
		if strings.HasPrefix(k, "2.0/") || strings.HasPrefix(k, "3.0/") {
			t.Fatalf("pruned snapshot files remain: %s", k)
		}
	}
}

// fakeChannels reproduces channels.nixos.org: /<channel> redirects to
// releases/<dir>/<release>, a release folder with an index page and files.
type fakeChannels struct {
	mu       sync.Mutex
	current  map[string]string            // channel → release
	releases map[string]map[string][]byte // release → file → bytes
	gets     map[string]int
}

func (f *fakeChannels) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets[r.URL.Path]++
	p := strings.TrimPrefix(r.URL.Path, "/")
	if rel, ok := f.current[p]; ok {
		http.Redirect(w, r, "/releases/nixos/25.11/"+rel, http.StatusMovedPermanently)
		return
	}
	rest, ok := strings.CutPrefix(p, "releases/nixos/25.11/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	rel, file, _ := strings.Cut(rest, "/")
	files, ok := f.releases[rel]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if file == "" {
		fmt.Fprintf(w, "<html>release %s</html>", rel)
		return
	}
	b, ok := files[file]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Write(b)
}

func (f *fakeChannels) addRelease(t *testing.T, rel string) {
	tb := channelTarball(t, rel, rel)
	sum := sha256.Sum256(tb)
	f.releases[rel] = map[string][]byte{
		"nixexprs.tar.xz":        tb,
		"nixexprs.tar.xz.sha256": []byte(hex.EncodeToString(sum[:]) + "\n"),
		"git-revision":           []byte("deadbeef" + rel + "\n"),
		"store-paths.xz":         xzBytes(t, []byte("/nix/store/y9v4w1kf41c10q7fdxlbz10s0adiximd-hello-2.12\n")),
	}
}

func TestMirrorChannelFollowsUpstreamForwardOnly(t *testing.T) {
	f := &fakeChannels{current: map[string]string{}, releases: map[string]map[string][]byte{}, gets: map[string]int{}}
	up := httptest.NewServer(f)
	defer up.Close()
	repo := memStore(t).Repo("nixos-remote")
	ctx := context.Background()
	mirror := func() *channel.MirrorResult {
		t.Helper()
		res, err := channel.Mirror(ctx, repo, up.URL, "nixos-25.11", nil)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	f.addRelease(t, "nixos-25.11.100.aaaaaaa")
	f.current["nixos-25.11"] = "nixos-25.11.100.aaaaaaa"
	if r := mirror(); r.Outcome != "mirrored" || r.Release != "nixos-25.11.100.aaaaaaa" || r.Push.Snapshot.Flavor != "nixos" {
		t.Fatalf("first run: %+v", r)
	}
	tarballGets := f.gets["/releases/nixos/25.11/nixos-25.11.100.aaaaaaa/nixexprs.tar.xz"]
	if r := mirror(); r.Outcome != "up-to-date" {
		t.Fatalf("second run: %+v", r)
	}
	if f.gets["/releases/nixos/25.11/nixos-25.11.100.aaaaaaa/nixexprs.tar.xz"] != tarballGets {
		t.Fatal("second run downloaded the tarball again")
	}
	f.addRelease(t, "nixos-25.11.200.bbbbbbb")
	f.current["nixos-25.11"] = "nixos-25.11.200.bbbbbbb"
	if r := mirror(); r.Outcome != "mirrored" || r.Push.Latest != "nixos-25.11.200.bbbbbbb" {
		t.Fatalf("advance: %+v", r)
	}
	ch, _ := repo.ReadChannel(ctx, "nixos-25.11")
	if len(ch.Snapshots) != 2 || ch.Snapshots[0].GitRevision != "deadbeefnixos-25.11.100.aaaaaaa" {
		t.Fatalf("old release must be kept with its metadata: %+v", ch)
	}
	// Upstream goes backwards: nothing moves.
	f.current["nixos-25.11"] = "nixos-25.11.100.aaaaaaa"
	if r := mirror(); r.Outcome != "up-to-date" {
		t.Fatalf("backwards to a known release: %+v", r)
	}
	f.addRelease(t, "nixos-25.11.150.ccccccc")
	f.current["nixos-25.11"] = "nixos-25.11.150.ccccccc"
	if r := mirror(); r.Outcome != "behind" {
		t.Fatalf("backwards to an unknown older release: %+v", r)
	}
	ch, _ = repo.ReadChannel(ctx, "nixos-25.11")
	if ch.Latest != "nixos-25.11.200.bbbbbbb" {
		t.Fatalf("channel moved backwards to %s", ch.Latest)
	}
	// A tarball that does not match its published sha256 is not mirrored.
	f.addRelease(t, "nixos-25.11.300.ddddddd")
	f.releases["nixos-25.11.300.ddddddd"]["nixexprs.tar.xz.sha256"] = []byte(strings.Repeat("0", 64))
	f.current["nixos-25.11"] = "nixos-25.11.300.ddddddd"
	if _, err := channel.Mirror(ctx, repo, up.URL, "nixos-25.11", nil); err == nil || !strings.Contains(err.Error(), "does not match its published sha256") {
		t.Fatalf("bad sha256: %v", err)
	}
}
