package publish

import (
	"context"
	"strings"
	"testing"

	"github.com/nixrepo/nixrepo/index"
	"github.com/nixrepo/nixrepo/internal/store"
	"github.com/nixrepo/nixrepo/site"
)

// TestSiteOfPublicRepositoriesHasNothingPrivate publishes the site of a
// catalog with a public and a private repository, first of both (as an
// older nixrepo did), then of the public one only, and reads every object
// under _site/ (pages and JSON search files): nothing of the private
// repository is left, stale pages included.
func TestSiteOfPublicRepositoriesHasNothingPrivate(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "mem://", "", false)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cat := siteCatalog("hello", "zlib")
	cat.Repos = append(cat.Repos, index.RepoInfo{Name: "vault", Type: "local", Paths: 2})
	const vaultHash = "9z9w0lp3wi8hmyyk8h5gg2hqvkljmw6j"
	vault := func(name, ver string) index.Version {
		return index.Version{Version: ver, Repos: []string{"vault"}, Paths: []index.PathInfo{{
			StorePath: "/nix/store/" + vaultHash + "-" + name + "-" + ver, Output: "out", Repos: []string{"vault"}}}}
	}
	hello := &cat.Packages[0]
	hello.Versions = append([]index.Version{vault("hello", "7.7")}, hello.Versions...)
	hello.Latest, hello.Repos = "7.7", []string{"nix-local", "vault"}
	cat.Packages = append(cat.Packages, index.Package{Name: "sealedpkg", Latest: "0.1", Repos: []string{"vault"}, Versions: []index.Version{vault("sealedpkg", "0.1")}})

	read := func() map[string]string {
		objs := map[string]string{}
		err := st.List(ctx, store.SitePrefix, false, func(o store.Object) error {
			b, err := st.Get(ctx, o.Key)
			objs[o.Key] = string(b)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return objs
	}
	marks := []string{"vault", vaultHash, "sealedpkg", "7.7"}
	if _, err := Site(ctx, st, cat, site.Options{}); err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, body := range read() {
		for _, m := range marks {
			if strings.Contains(body, m) {
				found++
			}
		}
	}
	if found == 0 {
		t.Fatal("the unrestricted site has nothing of vault: the test cannot fail")
	}

	if _, err := Site(ctx, st, cat, site.Options{Repos: []string{"nix-local"}}); err != nil {
		t.Fatal(err)
	}
	objs := read()
	for key, body := range objs {
		for _, m := range marks {
			if strings.Contains(body, m) || strings.Contains(key, m) {
				t.Errorf("%s mentions %q of the private repository", key, m)
			}
		}
	}
	if !strings.Contains(objs[store.SitePrefix+site.PackagePath("hello")], "0c9w0lp3wi8hmyyk8h5gg2hqvkljmw6j-hello-1.0") {
		t.Errorf("hello's page lost its public path")
	}
	if _, ok := objs[store.SitePrefix+site.PackagePath("sealedpkg")]; ok {
		t.Errorf("the page of sealedpkg (only in the private repository) was not deleted")
	}
}
