package publish_test

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "gocloud.dev/blob/memblob"

	"github.com/nixrepo/nixrepo/ingest"
	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
	"github.com/nixrepo/nixrepo/publish"
)

func memStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), "mem://", "", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestCacheInfoWrittenOnce(t *testing.T) {
	st := memStore(t)
	ctx := context.Background()
	repos := []publish.Repo{{Name: "a", Priority: 30}, {Name: "b"}}
	rep, err := publish.CacheInfo(ctx, st, repos)
	if err != nil || rep.Written != 2 {
		t.Fatalf("%+v %v", rep, err)
	}
	b, _ := st.Get(ctx, "a/nix-cache-info")
	if string(b) != "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n" {
		t.Fatalf("nix-cache-info = %q", b)
	}
	if rep, err := publish.CacheInfo(ctx, st, repos); err != nil || rep.Written != 0 {
		t.Fatalf("unchanged files rewritten: %+v %v", rep, err)
	}
	repos[1].Priority = 10
	if rep, _ := publish.CacheInfo(ctx, st, repos); rep.Written != 1 {
		t.Fatalf("changed priority: %+v", rep)
	}
}

// ingestSample fills repository name with the sample cache (made by Nix),
// optionally only the paths whose narinfo names contain one of only.
func ingestSample(t *testing.T, st *store.Store, name string, key nix.SecretKey, only ...string) {
	t.Helper()
	ctx := context.Background()
	src := memStore(t)
	root := filepath.Join("..", "testdata", "sample-cache")
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		b, _ := os.ReadFile(p)
		src.Put(ctx, filepath.ToSlash(rel), b, nil)
		return nil
	})
	if len(only) > 0 {
		src.List(ctx, "", true, func(o store.Object) error {
			if strings.HasSuffix(o.Key, ".narinfo") {
				keep := false
				for _, h := range only {
					keep = keep || strings.HasPrefix(o.Key, h)
				}
				if !keep {
					src.Delete(ctx, o.Key)
				}
			}
			return nil
		})
	}
	if _, err := ingest.Run(ctx, st.Repo(name), src.Root(), &ingest.Options{Key: key, Workers: 2}); err != nil {
		t.Fatal(err)
	}
}

func TestMaterializeVirtualTakesMembersInOrder(t *testing.T) {
	st := memStore(t)
	ctx := context.Background()
	keyA, _ := nix.GenerateKey("a-1", rand.Reader)
	keyB, _ := nix.GenerateKey("b-1", rand.Reader)
	keyV, _ := nix.GenerateKey("v-1", rand.Reader)
	ingestSample(t, st, "a", keyA, "8yhfprxp9fym8hjpsb3z3hzsfbrk1z42") // greeting-data only
	ingestSample(t, st, "b", keyB)                                     // all three
	rep, err := publish.Materialize(ctx, st, publish.Virtual{Name: "v", Members: []string{"a", "b"}, Key: keyV})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Paths != 3 || rep.Added != 3 || len(rep.Conflicts) != 0 || len(rep.Skipped) != 0 {
		t.Fatalf("%+v", rep)
	}
	// Member order decides: greeting-data comes from a (signed by a-1).
	ni, _, err := st.Repo("v").ReadNarInfo(ctx, "8yhfprxp9fym8hjpsb3z3hzsfbrk1z42")
	if err != nil || !ni.Verify([]nix.PublicKey{keyA.Public()}) || ni.Verify([]nix.PublicKey{keyB.Public()}) || !ni.Verify([]nix.PublicKey{keyV.Public()}) {
		t.Fatalf("greeting-data in the virtual repository: %v %v", ni, err)
	}
	vr, err := ingest.Verify(ctx, st.Repo("v"), &ingest.VerifyOptions{Keys: []nix.PublicKey{keyV.Public()}})
	if err != nil || vr.Failed != 0 || vr.Checked != 3 {
		t.Fatalf("verify of the materialised repository: %+v %v", vr, err)
	}
	// Incremental: nothing to do the second time.
	if rep, _ := publish.Materialize(ctx, st, publish.Virtual{Name: "v", Members: []string{"a", "b"}, Key: keyV}); rep.Added != 0 || rep.Copied != 0 {
		t.Fatalf("second run: %+v", rep)
	}
}

func TestMaterializeReportsConflicts(t *testing.T) {
	st := memStore(t)
	ctx := context.Background()
	key, _ := nix.GenerateKey("k-1", rand.Reader)
	ingestSample(t, st, "a", key)
	ingestSample(t, st, "b", key)
	// Member b claims another NarHash for greeting-data.
	raw, _ := st.Get(ctx, "b/8yhfprxp9fym8hjpsb3z3hzsfbrk1z42.narinfo")
	ni, _ := nix.ParseNarInfo(raw)
	d := append([]byte(nil), ni.NarHash.Digest...)
	d[0] ^= 1
	ni.NarHash = nix.SHA256(d)
	st.Put(ctx, "b/8yhfprxp9fym8hjpsb3z3hzsfbrk1z42.narinfo", ni.Bytes(), nil)
	rep, err := publish.Materialize(ctx, st, publish.Virtual{Name: "v", Members: []string{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Conflicts) != 1 || rep.Conflicts[0].Chosen != "a" || rep.Conflicts[0].Ignored != "b" {
		t.Fatalf("conflicts: %+v", rep.Conflicts)
	}
}
