package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Reserved is the prefix of everything nixrepo keeps in the bucket besides
// repositories. Repository names cannot start with '_', so it never collides
// with a repository.
const Reserved = "_nixrepo/"

// SitePrefix is the reserved top-level prefix that holds the static site
// (entry point _site/index.html). Like Reserved it starts with '_', so it
// never collides with a repository.
const SitePrefix = "_site/"

// reposDir holds each repository's bookkeeping: nar-meta/ and journal/.
const reposDir = Reserved + "repos/"

// The package catalog (package index) lives under CatalogPrefix; all but
// the manifest are S2 streams (codec.go). Their content is package index's
// format, described in docs/layout.md.
const (
	CatalogPrefix = Reserved + "catalog/"
	// CatalogManifest is the catalog's manifest (JSON), written pending
	// first and complete last.
	CatalogManifest = CatalogPrefix + "manifest.json"
	// CatalogMeta maps package names to packages.json metadata.
	CatalogMeta = CatalogPrefix + "meta.json" + catalogExt

	catalogExt = ".s2"
)

// CatalogPackageShard is the key of package shard i (0 ≤ i < 256):
// packages/<xx>.json.s2.
func CatalogPackageShard(i int) string {
	return fmt.Sprintf("%spackages/%02x.json%s", CatalogPrefix, i, catalogExt)
}

// CatalogStatePrefix holds the catalog's path state of a repository.
func CatalogStatePrefix(repo string) string { return CatalogPrefix + "state/" + repo + "/" }

// CatalogState is the state shard of repo's narinfos whose hash starts
// with the nix32 digit c: state/<repo>/<c>.tsv.s2.
func CatalogState(repo string, c byte) string {
	return CatalogStatePrefix(repo) + string(c) + ".tsv" + catalogExt
}

// CatalogSnapshotPairs is the pairs file of the snapshot "repo/channel/id":
// snapshots/<repo>/<channel>/<id>.tsv.s2.
func CatalogSnapshotPairs(snapshot string) string {
	return CatalogPrefix + "snapshots/" + snapshot + ".tsv" + catalogExt
}

// The layout version.
//
// _nixrepo/layout holds the version of the bucket layout (docs/layout.md)
// as decimal digits and a LF. A writer records it when absent
// (CheckLayout); a nixrepo that finds a newer version than it knows refuses
// the bucket, reading and writing alike, rather than misread or damage it.
// A bucket without the object has version 1 (what nixrepo wrote before it
// recorded the version).
const (
	LayoutVersion = 1
	layoutKey     = Reserved + "layout"
)

// ErrLayout: the bucket's layout is newer than this nixrepo knows.
var ErrLayout = errors.New("unsupported bucket layout")

// CheckLayout reads the bucket's layout version and fails with ErrLayout
// when it is newer than LayoutVersion, or unreadable. With write set (a
// process that will write the bucket), an absent version is recorded.
func (s *Store) CheckLayout(ctx context.Context, write bool) error {
	b, err := s.GetLimit(ctx, layoutKey, 64)
	if errors.Is(err, ErrNotFound) {
		if !write {
			return nil
		}
		err = s.Put(ctx, layoutKey, []byte(strconv.Itoa(LayoutVersion)+"\n"), &WriteOptions{ContentType: ContentTypeText, IfNotExist: true})
		if errors.Is(err, ErrExists) { // another writer recorded it meanwhile
			return s.CheckLayout(ctx, false)
		}
		return err
	}
	if err != nil {
		return err
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || v < 1 {
		return fmt.Errorf("store %s: %s holds %q, not a layout version: %w", s.url, layoutKey, b, ErrLayout)
	}
	if v > LayoutVersion {
		return fmt.Errorf("store %s: the bucket has layout version %d, and this nixrepo knows versions up to %d: use a newer nixrepo: %w", s.url, v, LayoutVersion, ErrLayout)
	}
	return nil
}
