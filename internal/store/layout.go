package store

import (
	"context"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/nixrepo/nixrepo/internal/nix"
)

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
	ContentTypeJSON      = "application/json"
	ContentTypeText      = "text/plain; charset=utf-8"
)

const (
	narInfoExt = ".narinfo"
	listingExt = ".ls"
)

// NarInfoFile is "<hash>.narinfo".
func NarInfoFile(hashPart string) string { return hashPart + narInfoExt }

// ListingFile is "<hash>.ls".
func ListingFile(hashPart string) string { return hashPart + listingExt }

// NarInfoHash is the hash part of a narinfo's name "<hash>.narinfo"; ok is
// false for any other name.
func NarInfoHash(rel string) (hashPart string, ok bool) {
	h, ok := strings.CutSuffix(rel, narInfoExt)
	return h, ok && nix.IsHashPart(h)
}

// ListingHash is the hash part of a listing's name "<hash>.ls"; ok is
// false for any other name.
func ListingHash(rel string) (hashPart string, ok bool) {
	h, ok := strings.CutSuffix(rel, listingExt)
	return h, ok && nix.IsHashPart(h)
}

// RealisationID is the id of a realisation's name
// "realisations/<id>.doi"; ok is false for any other name (the id itself
// is not checked).
func RealisationID(rel string) (id string, ok bool) {
	id, ok = strings.CutPrefix(rel, RealisationDir)
	if !ok {
		return "", false
	}
	return strings.CutSuffix(id, ".doi")
}

// NarFile is the name Nix gives a NAR file, and the URL its narinfo holds:
// "nar/<FileHash nix32>.nar<ext>" (nix.NarExtension).
func NarFile(fileHash nix.Hash, compression string) string {
	return NarDir + fileHash.Nix32() + ".nar" + nix.NarExtension(compression)
}

// Cache is one Nix binary cache in a bucket: a repository ("<name>/" in the
// repository store) or a whole source bucket (prefix ""). Its objects follow
// Nix's binary-cache layout exactly, so any static file server over the bucket
// serves it to Nix. Its methods take names relative to the cache
// ("nix-cache-info", "nar/…", NarInfoFile(h)); messages and errors name the
// bucket key. Store gives the bucket for what spans repositories.
type Cache struct {
	st     *Store
	prefix string
	name   string
}

// Repo is the cache of repository name.
func (s *Store) Repo(name string) *Cache {
	return &Cache{st: s, prefix: name + "/", name: name}
}

// Root is the cache at the bucket's root (a binary cache folder as written by
// `nix copy --to file://DIR`).
func (s *Store) Root() *Cache {
	return &Cache{st: s, prefix: "", name: s.url}
}

// Store is the bucket holding the cache.
func (c *Cache) Store() *Store { return c.st }

// Name is the repository name, or the bucket URL for a root cache.
func (c *Cache) Name() string { return c.name }

// Key turns a cache-relative name into its bucket key (for messages and
// reports; the methods below take relative names).
func (c *Cache) Key(rel string) string { return c.prefix + rel }

// Get reads the whole object rel (Store.Get).
func (c *Cache) Get(ctx context.Context, rel string) ([]byte, error) {
	return c.st.Get(ctx, c.Key(rel))
}

// GetLimit reads the whole object rel of at most limit bytes (Store.GetLimit).
func (c *Cache) GetLimit(ctx context.Context, rel string, limit int64) ([]byte, error) {
	return c.st.GetLimit(ctx, c.Key(rel), limit)
}

// Put writes the object rel atomically (Store.Put).
func (c *Cache) Put(ctx context.Context, rel string, data []byte, opts *WriteOptions) error {
	return c.st.Put(ctx, c.Key(rel), data, opts)
}

// NewWriter starts a streaming write of rel (Store.NewWriter).
func (c *Cache) NewWriter(ctx context.Context, rel string, opts *WriteOptions) (*Writer, error) {
	return c.st.NewWriter(ctx, c.Key(rel), opts)
}

// NewReader opens rel for streaming (Store.NewReader).
func (c *Cache) NewReader(ctx context.Context, rel string) (*Reader, error) {
	return c.st.NewReader(ctx, c.Key(rel))
}

// NewRangeReader opens length bytes of rel from offset (Store.NewRangeReader).
func (c *Cache) NewRangeReader(ctx context.Context, rel string, offset, length int64) (*Reader, error) {
	return c.st.NewRangeReader(ctx, c.Key(rel), offset, length)
}

// Exists reports whether rel exists (Store.Exists).
func (c *Cache) Exists(ctx context.Context, rel string) (bool, error) {
	return c.st.Exists(ctx, c.Key(rel))
}

// Stat returns the attributes of rel (Store.Stat).
func (c *Cache) Stat(ctx context.Context, rel string) (Attributes, error) {
	return c.st.Stat(ctx, c.Key(rel))
}

// Delete removes rel (Store.Delete).
func (c *Cache) Delete(ctx context.Context, rel string) error {
	return c.st.Delete(ctx, c.Key(rel))
}

// Update changes rel by compare-and-swap (Store.Update).
func (c *Cache) Update(ctx context.Context, rel string, opts *WriteOptions, fn func(old []byte) ([]byte, error)) error {
	return c.st.Update(ctx, c.Key(rel), opts, fn)
}

// LocalPath is the file holding rel in a folder bucket (Store.LocalPath).
func (c *Cache) LocalPath(rel string) (string, bool) { return c.st.LocalPath(c.Key(rel)) }

// Copy copies srcRel to dstRel inside the cache (Store.Copy).
func (c *Cache) Copy(ctx context.Context, dstRel, srcRel string) error {
	return c.st.Copy(ctx, c.Key(dstRel), c.Key(srcRel))
}

// CopyFrom copies srcRel of the cache src to dstRel of c: server-side when
// both are in one bucket, else streamed.
func (c *Cache) CopyFrom(ctx context.Context, dstRel string, src *Cache, srcRel string) error {
	if src.st == c.st {
		return c.st.Copy(ctx, c.Key(dstRel), src.Key(srcRel))
	}
	r, err := src.NewReader(ctx, srcRel)
	if err != nil {
		return err
	}
	defer r.Close()
	w, err := c.NewWriter(ctx, dstRel, nil)
	if err != nil {
		return err
	}
	defer w.Abort()
	if _, err := io.Copy(w, r); err != nil {
		return fmt.Errorf("copy %s: %w", src.Key(srcRel), err)
	}
	return w.Commit()
}

// List calls fn for every object under the cache-relative relPrefix, with
// Object.Key relative to the cache (Store.List).
func (c *Cache) List(ctx context.Context, relPrefix string, shallow bool, fn func(Object) error) error {
	return c.st.List(ctx, c.Key(relPrefix), shallow, func(o Object) error {
		o.Key = o.Key[len(c.prefix):]
		return fn(o)
	})
}

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
	return c.List(ctx, "", true, func(o Object) error {
		if o.Dir {
			return nil
		}
		h, ok := strings.CutSuffix(o.Key, narInfoExt)
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
	b, err := c.GetLimit(ctx, NarInfoFile(hashPart), nix.MaxNarInfoSize)
	if err != nil {
		return nil, nil, err
	}
	ni, err := nix.ParseNarInfo(b)
	if err != nil {
		return nil, b, fmt.Errorf("%s: %w", c.Key(NarInfoFile(hashPart)), err)
	}
	return ni, b, nil
}

// HasNarInfo reports whether the cache has a narinfo for hashPart.
func (c *Cache) HasNarInfo(ctx context.Context, hashPart string) (bool, error) {
	return c.Exists(ctx, NarInfoFile(hashPart))
}
