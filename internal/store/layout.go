package store

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/nixrepo/nixrepo/internal/nix"
)

// Reserved is the prefix of everything nixrepo keeps in the bucket besides
// repositories. Repository names cannot start with '_', so it never collides
// with a repository.
const Reserved = "_nixrepo/"

// File names inside a cache, relative to its root.
const (
	CacheInfoFile  = "nix-cache-info"
	NarDir         = "nar/"
	LogDir         = "log/"
	RealisationDir = "realisations/"
)

// Content types Nix sends and expects, by object kind.
const (
	ContentTypeCacheInfo = "text/x-nix-cache-info"
	ContentTypeNarInfo   = "text/x-nix-narinfo"
	ContentTypeNar       = "application/x-nix-nar"
	ContentTypeListing   = "application/json"
	ContentTypeLog       = "text/plain; charset=utf-8"
)

// MaxChannelStateSize bounds a channel's state file,
// R/channels/NAME/channel.json, which is read whole: 16 MiB, room for tens
// of thousands of snapshots. Readers stop there (GetLimit) and the writer
// refuses to grow a state past it.
const MaxChannelStateSize = 16 << 20

// NarInfoFile is "<hash>.narinfo".
func NarInfoFile(hashPart string) string { return hashPart + ".narinfo" }

// ListingFile is "<hash>.ls".
func ListingFile(hashPart string) string { return hashPart + ".ls" }

// Cache is one Nix binary cache in a bucket: a repository ("<name>/" in the
// repository store) or a whole source bucket (prefix ""). Its objects follow
// Nix's binary-cache layout exactly, so any static file server over the bucket
// serves it to Nix.
type Cache struct {
	*Store
	prefix string
	name   string
}

// Repo is the cache of repository name.
func (s *Store) Repo(name string) *Cache {
	return &Cache{Store: s, prefix: name + "/", name: name}
}

// Root is the cache at the bucket's root (a binary cache folder as written by
// `nix copy --to file://DIR`).
func (s *Store) Root() *Cache {
	return &Cache{Store: s, prefix: "", name: s.url}
}

// Name is the repository name, or the bucket URL for a root cache.
func (c *Cache) Name() string { return c.name }

// Prefix is the cache's key prefix ("" or "<repo>/").
func (c *Cache) Prefix() string { return c.prefix }

// Key turns a cache-relative name into a bucket key.
func (c *Cache) Key(rel string) string { return c.prefix + rel }

// CheckRel validates a cache-relative object name taken from untrusted input
// (a narinfo URL, an upload path): no absolute paths, no "." or ".."
// segments, no empty segments, no backslashes or control characters.
func CheckRel(rel string) error {
	if rel == "" {
		return fmt.Errorf("empty path")
	}
	if strings.HasPrefix(rel, "/") {
		return fmt.Errorf("path %q is absolute", rel)
	}
	for _, c := range rel {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return fmt.Errorf("path %q contains a control character or backslash", rel)
		}
	}
	for _, seg := range strings.Split(rel, "/") {
		switch seg {
		case "":
			return fmt.Errorf("path %q has an empty segment", rel)
		case ".", "..":
			return fmt.Errorf("path %q has a %q segment", rel, seg)
		}
	}
	if path.Clean(rel) != rel {
		return fmt.Errorf("path %q is not clean", rel)
	}
	return nil
}

// NarInfos calls fn with the hash part of every narinfo at the cache's top
// level, in key order.
func (c *Cache) NarInfos(ctx context.Context, fn func(hashPart string) error) error {
	return c.List(ctx, c.prefix, true, func(o Object) error {
		if o.Dir {
			return nil
		}
		name := strings.TrimPrefix(o.Key, c.prefix)
		h, ok := strings.CutSuffix(name, ".narinfo")
		if !ok || !nix.IsHashPart(h) {
			return nil
		}
		return fn(h)
	})
}

// ReadNarInfo reads and parses the narinfo of hashPart. It returns the raw
// bytes too. A missing narinfo is ErrNotFound; one larger than
// nix.MaxNarInfoSize is ErrTooLarge (read no further than that).
func (c *Cache) ReadNarInfo(ctx context.Context, hashPart string) (*nix.NarInfo, []byte, error) {
	key := c.Key(NarInfoFile(hashPart))
	b, err := c.GetLimit(ctx, key, nix.MaxNarInfoSize)
	if err != nil {
		return nil, nil, err
	}
	ni, err := nix.ParseNarInfo(b)
	if err != nil {
		return nil, b, fmt.Errorf("%s: %w", key, err)
	}
	return ni, b, nil
}

// HasNarInfo reports whether the cache has a narinfo for hashPart.
func (c *Cache) HasNarInfo(ctx context.Context, hashPart string) (bool, error) {
	return c.Exists(ctx, c.Key(NarInfoFile(hashPart)))
}

// NarMetaKey is where the measurement of the cache's NAR file with the given
// FileHash (nix32) is recorded: under the reserved prefix, so static hosting
// never serves it as part of the cache.
func (c *Cache) NarMetaKey(fileHashNix32 string) string {
	return Reserved + "repos/" + c.prefix + "nar-meta/" + fileHashNix32 + ".json"
}
