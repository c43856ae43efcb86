package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

func openMem(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), "mem://", "", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestCheckLayout: a reader leaves an unversioned bucket alone, a writer
// records version 1, and a newer or unreadable version is refused either way.
func TestCheckLayout(t *testing.T) {
	ctx := context.Background()
	st := openMem(t)
	if err := st.CheckLayout(ctx, false); err != nil {
		t.Fatalf("reading an unversioned bucket: %v", err)
	}
	if ok, _ := st.Exists(ctx, store.Reserved+"layout"); ok {
		t.Fatal("a reader recorded the layout version")
	}
	if err := st.CheckLayout(ctx, true); err != nil {
		t.Fatalf("writing: %v", err)
	}
	if b, err := st.Get(ctx, store.Reserved+"layout"); err != nil || string(b) != "1\n" {
		t.Fatalf("layout object = %q, %v; want \"1\\n\"", b, err)
	}
	if err := st.CheckLayout(ctx, true); err != nil {
		t.Fatalf("a second writer: %v", err)
	}
	for _, content := range []string{"2\n", "x\n", "0\n"} {
		if err := st.Put(ctx, store.Reserved+"layout", []byte(content), nil); err != nil {
			t.Fatal(err)
		}
		for _, write := range []bool{false, true} {
			if err := st.CheckLayout(ctx, write); !errors.Is(err, store.ErrLayout) {
				t.Errorf("layout %q, write %v: got %v, want ErrLayout", content, write, err)
			}
		}
	}
}

func TestNarFile(t *testing.T) {
	h, err := nix.ParseHash("sha256:1c0swkdm98crlpd6zcc7c8vl4wvzwfi7yz4wky5s59y2qc2nrfnx")
	if err != nil {
		t.Fatal(err)
	}
	for comp, want := range map[string]string{
		"none": "nar/1c0swkdm98crlpd6zcc7c8vl4wvzwfi7yz4wky5s59y2qc2nrfnx.nar",
		"xz":   "nar/1c0swkdm98crlpd6zcc7c8vl4wvzwfi7yz4wky5s59y2qc2nrfnx.nar.xz",
		"zstd": "nar/1c0swkdm98crlpd6zcc7c8vl4wvzwfi7yz4wky5s59y2qc2nrfnx.nar.zst",
	} {
		if got := store.NarFile(h, comp); got != want {
			t.Errorf("NarFile(%s) = %q, want %q", comp, got, want)
		}
	}
}

// TestChannelState: channel.json keeps its exact bytes (indented JSON and
// a LF) and reads back; a corrupt one is ErrCorrupt.
func TestChannelState(t *testing.T) {
	ctx := context.Background()
	st := openMem(t)
	repo := st.Repo("r")
	up := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ch := &store.Channel{Name: "team", Latest: "1", Snapshots: []store.Snapshot{{ID: "1", Flavor: "nixpkgs",
		NarHash: "0abc", FileHash: "ff", Size: 3, Uploaded: up, Files: []string{store.ChannelTarball}}}}
	if _, err := repo.UpdateChannel(ctx, "team", func(c *store.Channel) error { *c = *ch; return nil }); err != nil {
		t.Fatal(err)
	}
	b, err := st.Get(ctx, "r/channels/team/channel.json")
	if err != nil {
		t.Fatal(err)
	}
	const want = `{
  "name": "team",
  "latest": "1",
  "snapshots": [
    {
      "id": "1",
      "flavor": "nixpkgs",
      "narHash": "0abc",
      "fileHash": "ff",
      "size": 3,
      "uploaded": "2026-01-02T03:04:05Z",
      "files": [
        "nixexprs.tar.xz"
      ]
    }
  ]
}
`
	if string(b) != want {
		t.Errorf("channel.json =\n%s\nwant\n%s", b, want)
	}
	got, err := repo.ReadChannel(ctx, "team")
	if err != nil || got.Latest != "1" || len(got.Snapshots) != 1 || !got.Snapshots[0].Uploaded.Equal(up) {
		t.Fatalf("ReadChannel = %+v, %v", got, err)
	}
	if names, err := repo.ListChannels(ctx); err != nil || len(names) != 1 || names[0] != "team" {
		t.Fatalf("ListChannels = %v, %v", names, err)
	}
	if err := st.Put(ctx, "r/channels/team/channel.json", []byte("{"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.ReadChannel(ctx, "team"); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("corrupt state: got %v, want ErrCorrupt", err)
	}
}

// TestCacheRelativeNames: a repository's methods take names relative to
// it, and List gives them back relative too.
func TestCacheRelativeNames(t *testing.T) {
	ctx := context.Background()
	st := openMem(t)
	repo := st.Repo("r")
	if err := repo.Put(ctx, "nar/x.nar", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if ok, _ := st.Exists(ctx, "r/nar/x.nar"); !ok {
		t.Fatal("Put did not write r/nar/x.nar")
	}
	var keys []string
	if err := repo.List(ctx, store.NarDir, false, func(o store.Object) error { keys = append(keys, o.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != "nar/x.nar" {
		t.Fatalf("List = %v, want [nar/x.nar]", keys)
	}
	other := st.Repo("v")
	if err := other.CopyFrom(ctx, "nar/y.nar", repo, "nar/x.nar"); err != nil {
		t.Fatal(err)
	}
	if b, err := other.Get(ctx, "nar/y.nar"); err != nil || string(b) != "x" {
		t.Fatalf("CopyFrom: %q, %v", b, err)
	}
	far := openMem(t).Repo("w")
	if err := far.CopyFrom(ctx, "nar/z.nar", repo, "nar/x.nar"); err != nil {
		t.Fatal(err)
	}
	if b, err := far.Get(ctx, "nar/z.nar"); err != nil || string(b) != "x" {
		t.Fatalf("CopyFrom another bucket: %q, %v", b, err)
	}
}

// TestChannelInOrder: snapshots are listed newest first in the channel's
// own order: Nix's version order when every ID carries a number (an older
// release uploaded later is not first), upload order otherwise.
func TestChannelInOrder(t *testing.T) {
	ids := func(ss []store.Snapshot) string {
		var out []string
		for _, s := range ss {
			out = append(out, s.ID)
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct{ uploaded, want string }{
		{"1.9 1.10 1.2", "1.10 1.9 1.2"},
		{"nixos-25.11.100.aaa nixos-25.05.900.bbb nixos-25.11.99.ccc", "nixos-25.11.100.aaa nixos-25.11.99.ccc nixos-25.05.900.bbb"},
		{"alpha 2.0 beta", "beta 2.0 alpha"},
		{"", ""},
	} {
		ch := &store.Channel{}
		for _, id := range strings.Fields(tc.uploaded) {
			ch.Snapshots = append(ch.Snapshots, store.Snapshot{ID: id})
		}
		if got := ids(ch.InOrder()); got != tc.want {
			t.Errorf("uploaded %q: InOrder = %q, want %q", tc.uploaded, got, tc.want)
		}
	}
}
