package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/nixtest"
	"github.com/nixrepo/nixrepo/internal/upstreamtest"
)

// TestRemoteAndVirtualWithNix is the acceptance test of remote and virtual
// repositories with real Nix: substitution through a remote repository from
// a fake upstream, again with the upstream stopped, and through a virtual
// repository over a local and the remote one in one nix copy --from with
// require-sigs; then the statically materialised virtual repository.
func TestRemoteAndVirtualWithNix(t *testing.T) {
	env := nixtest.Require(t)
	dir := t.TempDir()
	tag := fmt.Sprintf("remote-%d", os.Getpid())
	pathsA := env.Build(t, nixtest.ClosureExpr(tag+"-a", 4))
	pathsB := env.Build(t, nixtest.ClosureExpr(tag+"-b", 4))
	closureB := env.Closure(t, pathsB...)

	// The upstream holds both closures, signed with its own key.
	upDir := filepath.Join(dir, "upstream")
	env.CopyTo(t, "file://"+upDir, append(pathsA, pathsB...)...)
	upKey, err := nix.GenerateKey("upstream-test-1", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	up := upstreamtest.New(upDir, upKey)
	defer up.Close()

	cfg := fmt.Sprintf(`version = 1
[store]
url = "file://./store"
[[repo]]
name = "nix-local"
type = "local"
signing_key_file = "keys/local.sec"
generate_key = true
public = true
[[repo]]
name = "upstream-mirror"
type = "remote"
upstream = %q
trusted_keys = [%q]
public = true
[[repo]]
name = "all"
type = "virtual"
members = ["nix-local", "upstream-mirror"]
signing_key_file = "keys/all.sec"
public = true
`, up.URL, upKey.Public().String())
	os.WriteFile(filepath.Join(dir, "nixrepo.toml"), []byte(cfg), 0o644)
	virtPub := strings.TrimSpace(mustRun(t, dir, "keygen", "all-1", "--out", "keys/all.sec"))

	// Part of closure B (its bottom half) lives in the local repository.
	var lower string
	for _, p := range closureB {
		if strings.Contains(p, "node1") {
			lower = p
		}
	}
	if lower == "" {
		t.Fatalf("no node1 in %v", closureB)
	}
	env.CopyTo(t, "file://"+filepath.Join(dir, "stage"), lower)
	mustRun(t, dir, "ingest", "--repo", "nix-local", filepath.Join(dir, "stage"))

	srv, hs := serveDir(t, dir, nil)

	remote := hs.URL + "/api/nix/upstream-mirror"
	if err := env.Substitute(t, remote, []string{upKey.Public().String()}, pathsA...); err != nil {
		t.Fatalf("substitution through the remote repository: %v", err)
	}
	// Through the virtual repository, trusting only its key: the local
	// member's paths and the upstream's in one copy.
	virtual := hs.URL + "/api/nix/all"
	if err := env.Substitute(t, virtual, []string{virtPub}, pathsB...); err != nil {
		t.Fatalf("substitution through the virtual repository: %v", err)
	}
	// The local member wins for its paths: its narinfo (signed by the local
	// key, not the upstream's) is what the virtual repository serves.
	resp, err := http.Get(virtual + "/" + filepath.Base(lower)[:32] + ".narinfo")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "Sig: nix-local-1:") || strings.Contains(string(body), "upstream-test-1:") {
		t.Fatalf("virtual repository served the wrong member's narinfo:\n%s", body)
	}

	// Upstream gone: the cached copies still substitute.
	srv.Idle()
	up.Close()
	if err := env.Substitute(t, remote, []string{upKey.Public().String()}, pathsA...); err != nil {
		t.Fatalf("substitution with the upstream stopped: %v", err)
	}
	out := mustRun(t, dir, "verify", "--repo", "upstream-mirror")
	if !strings.Contains(out, "0 failed") {
		t.Fatalf("verify of the mirrored paths:\n%s", out)
	}

	// publish materialises the virtual repository for static hosting (once
	// the remote repository completed the closures it serves).
	srv.Idle()
	out = mustRun(t, dir, "publish")
	if !strings.Contains(out, "virtual all:") {
		t.Fatalf("publish:\n%s", out)
	}
	static := httptest.NewServer(http.FileServer(http.Dir(filepath.Join(dir, "store"))))
	defer static.Close()
	if err := env.Substitute(t, static.URL+"/all", []string{virtPub}, pathsB...); err != nil {
		t.Fatalf("substitution from the static virtual repository: %v", err)
	}
}
