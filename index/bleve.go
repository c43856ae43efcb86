package index

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"unicode/utf8"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/custom"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/keyword"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/standard"
	"github.com/blevesearch/bleve/v2/analysis/token/lowercase"
	"github.com/blevesearch/bleve/v2/analysis/tokenizer/regexp"
	"github.com/blevesearch/bleve/v2/analysis/tokenizer/single"
	"github.com/blevesearch/bleve/v2/index/scorch"
	"github.com/blevesearch/bleve/v2/index/scorch/mergeplan"
	"github.com/blevesearch/bleve/v2/mapping"
	"github.com/blevesearch/bleve/v2/search/query"

	"github.com/nixrepo/nixrepo/internal/store"
	"github.com/nixrepo/nixrepo/internal/work"
)

// The search index is a folder on local disk holding one bleve document
// per package. It is derived data: OpenIndex's callers rebuild it from the
// catalog in the bucket whenever it is missing, unreadable or behind.
//
//	DIR/CURRENT                 name of the current generation folder
//	DIR/lock                    writers' lock (flock)
//	DIR/g<generation>-<random>/meta.json
//	DIR/g<generation>-<random>/s0 … s<N-1>   bleve (scorch) indexes, packages split by name hash
//
// Writers never modify the current generation: a full build writes a new
// folder with bleve's offline builder, an update hard-links the current
// one's immutable segment files into a new folder and applies a batch
// there, and both then switch CURRENT atomically. Readers (the server, the
// CLI) open the folder CURRENT names read-only, so they never block a
// writer and see either the old or the new generation, never a mix.

// Fields of an index document.
const (
	FieldName        = "name"        // the package name lower-cased, one token (exact and prefix match)
	FieldWords       = "words"       // the name's (and attribute path's) alphanumeric runs, lower-cased
	FieldRepoName    = "rname"       // "<repo>/<lower-cased name>" for each repository
	FieldVersions    = "versions"    // every version, keyword
	FieldLatest      = "latest"      // keyword
	FieldRepos       = "repos"       // keyword
	FieldDescription = "description" // standard analyzer
	FieldNameLength  = "nlen"        // the name's length in characters, three digits ("007"), keyword
	FieldShard       = "cs"          // the catalog's package shard (ShardOf) in two hex digits, keyword
	FieldSummary     = "s"           // stored only: the Summary as JSON
)

const (
	// maxSegments is the number of segments in a shard from which an
	// update merges them into one.
	maxSegments = 8

	indexFormat   = 3 // 3: FieldShard
	currentFile   = "CURRENT"
	indexMetaFile = "meta.json"
)

// ErrNoIndex is returned by OpenIndex when the folder has no index.
var ErrNoIndex = errors.New("no search index")

// errIndexStale: the index is not at the generation an update starts from.
var errIndexStale = errors.New("search index is not at the catalog's previous generation")

// Summary is what the index stores of a package for search results.
type Summary struct {
	Name        string           `json:"n"`
	Versions    []VersionSummary `json:"v"` // highest first
	Description string           `json:"d,omitempty"`
}

// VersionSummary is a version and the repositories that have it.
type VersionSummary struct {
	Version string   `json:"v"`
	Repos   []string `json:"r"`
}

// SummaryOf summarises a package.
func SummaryOf(p *Package) Summary {
	s := Summary{Name: p.Name, Description: p.Description, Versions: make([]VersionSummary, len(p.Versions))}
	for i, v := range p.Versions {
		s.Versions[i] = VersionSummary{Version: v.Version, Repos: v.Repos}
	}
	return s
}

// Latest is the highest version ("" when none).
func (s Summary) Latest() string {
	if len(s.Versions) == 0 {
		return ""
	}
	return s.Versions[0].Version
}

// Repos is the sorted union of the versions' repositories.
func (s Summary) Repos() []string {
	var out []string
	for _, v := range s.Versions {
		out = unionSorted(out, v.Repos)
	}
	return out
}

// Restrict returns the summary cut down to versions in the given
// repositories (nil: all); ok is false when no version is left.
func (s Summary) Restrict(repos []string) (Summary, bool) {
	if repos == nil {
		return s, len(s.Versions) > 0
	}
	out := s
	out.Versions = nil
	for _, v := range s.Versions {
		var rs []string
		for _, r := range v.Repos {
			for _, a := range repos {
				if r == a {
					rs = append(rs, r)
					break
				}
			}
		}
		if len(rs) > 0 {
			out.Versions = append(out.Versions, VersionSummary{Version: v.Version, Repos: rs})
		}
	}
	return out, len(out.Versions) > 0
}

// indexDoc is the bleve document of a package.
type indexDoc struct {
	Name        string   `json:"name"`
	Words       string   `json:"words"`
	RepoName    []string `json:"rname"`
	Versions    []string `json:"versions"`
	Latest      string   `json:"latest"`
	Repos       []string `json:"repos"`
	Description string   `json:"description,omitempty"`
	NameLength  string   `json:"nlen"`
	Shard       string   `json:"cs"`
	S           string   `json:"s"`
}

func shardTerm(s int) string { return fmt.Sprintf("%02x", s) }

// NameLength is the FieldNameLength term of a name of n characters.
func NameLength(n int) string { return fmt.Sprintf("%03d", min(n, 999)) }

func docOf(p *Package) indexDoc {
	lower := strings.ToLower(p.Name)
	d := indexDoc{Name: lower, Words: p.Name, Latest: p.Latest, Repos: p.Repos, Description: p.Description,
		NameLength: NameLength(utf8.RuneCountInString(p.Name)), Shard: shardTerm(ShardOf(p.Name))}
	if p.AttrPath != "" {
		d.Words += " " + p.AttrPath
	}
	for _, r := range p.Repos {
		d.RepoName = append(d.RepoName, r+"/"+lower)
	}
	d.Versions = make([]string, len(p.Versions))
	for i, v := range p.Versions {
		d.Versions[i] = v.Version
	}
	b, _ := json.Marshal(SummaryOf(p))
	d.S = string(b)
	return d
}

// NewMapping is the index mapping: lean (no _all, no term vectors, no doc
// values, only the summary stored).
func NewMapping() mapping.IndexMapping {
	im := bleve.NewIndexMapping()
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	must(im.AddCustomAnalyzer("nixname", map[string]any{
		"type": custom.Name, "tokenizer": single.Name, "token_filters": []any{lowercase.Name},
	}))
	must(im.AddCustomTokenizer("alnum", map[string]any{"type": regexp.Name, "regexp": `[\p{L}\p{N}]+`}))
	must(im.AddCustomAnalyzer("nixwords", map[string]any{
		"type": custom.Name, "tokenizer": "alnum", "token_filters": []any{lowercase.Name},
	}))
	field := func(analyzer string) *mapping.FieldMapping {
		f := bleve.NewTextFieldMapping()
		f.Analyzer = analyzer
		f.Store, f.IncludeTermVectors, f.IncludeInAll, f.DocValues = false, false, false, false
		return f
	}
	dm := bleve.NewDocumentStaticMapping()
	dm.AddFieldMappingsAt(FieldName, field("nixname"))
	dm.AddFieldMappingsAt(FieldWords, field("nixwords"))
	dm.AddFieldMappingsAt(FieldRepoName, field(keyword.Name))
	dm.AddFieldMappingsAt(FieldVersions, field(keyword.Name))
	dm.AddFieldMappingsAt(FieldLatest, field(keyword.Name))
	dm.AddFieldMappingsAt(FieldRepos, field(keyword.Name))
	dm.AddFieldMappingsAt(FieldNameLength, field(keyword.Name))
	dm.AddFieldMappingsAt(FieldShard, field(keyword.Name))
	dm.AddFieldMappingsAt(FieldDescription, field(standard.Name))
	s := bleve.NewTextFieldMapping()
	s.Index, s.Store, s.IncludeTermVectors, s.IncludeInAll, s.DocValues = false, true, false, false, false
	dm.AddFieldMappingsAt(FieldSummary, s)
	im.DefaultMapping = dm
	im.DefaultAnalyzer = keyword.Name
	im.StoreDynamic, im.IndexDynamic, im.DocValuesDynamic = false, false, false
	return im
}

// DocOf returns the document the index holds for a package (for
// benchmarks that index the same documents with bleve alone).
func DocOf(p *Package) any { return docOf(p) }

type indexMeta struct {
	Format     int   `json:"format"`
	Generation int64 `json:"generation"`
	Shards     int   `json:"shards"`
	Docs       int   `json:"docs"`
}

func shardFor(name string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	return int(h.Sum32() % uint32(n))
}

// lockDir takes the writers' lock of an index folder.
func lockDir(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

func readCurrent(dir string) (string, *indexMeta, error) {
	b, err := os.ReadFile(filepath.Join(dir, currentFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil, ErrNoIndex
	}
	if err != nil {
		return "", nil, err
	}
	name := strings.TrimSpace(string(b))
	if name == "" || strings.ContainsAny(name, `/\`) || name[0] == '.' {
		return "", nil, fmt.Errorf("index: %s: bad generation name %q", currentFile, name)
	}
	gd := filepath.Join(dir, name)
	mb, err := os.ReadFile(filepath.Join(gd, indexMetaFile))
	if err != nil {
		return "", nil, fmt.Errorf("index: %w", err)
	}
	var m indexMeta
	if err := json.Unmarshal(mb, &m); err != nil {
		return "", nil, fmt.Errorf("index: %s: %w", filepath.Join(gd, indexMetaFile), err)
	}
	if m.Format != indexFormat || m.Shards < 1 {
		return "", nil, fmt.Errorf("index: %s: unsupported format %d", gd, m.Format)
	}
	return gd, &m, nil
}

// IndexGeneration is the catalog generation the index in dir reflects
// (ErrNoIndex when there is none).
func IndexGeneration(dir string) (int64, error) {
	_, m, err := readCurrent(dir)
	if err != nil {
		return 0, err
	}
	return m.Generation, nil
}

func newGenDir(dir string, gen int64) (string, error) {
	var r [4]byte
	rand.Read(r[:])
	gd := filepath.Join(dir, fmt.Sprintf("g%012d-%s", gen, hex.EncodeToString(r[:])))
	return gd, os.MkdirAll(gd, 0o755)
}

// switchCurrent makes gd current and removes generations older than the
// one it replaces (an open reader of that one keeps working).
func switchCurrent(dir, gd string, m *indexMeta) error {
	b, _ := json.Marshal(m)
	if err := writeFileSync(filepath.Join(gd, indexMetaFile), b); err != nil {
		return err
	}
	prev, _, _ := readCurrent(dir)
	if err := writeFileSync(filepath.Join(dir, currentFile+".tmp"), []byte(filepath.Base(gd)+"\n")); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(dir, currentFile+".tmp"), filepath.Join(dir, currentFile)); err != nil {
		return err
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() && strings.HasPrefix(n, "g") && n != filepath.Base(gd) && n != filepath.Base(prev) {
			os.RemoveAll(filepath.Join(dir, n))
		}
	}
	return nil
}

func writeFileSync(p string, b []byte) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// BuildIndex writes a new search index generation for the packages with
// bleve's offline builder (shards builders in parallel) and makes it
// current.
func BuildIndex(dir string, pkgs []Package, generation int64, shards int) error {
	if shards < 1 {
		shards = 1
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	defer unlock()
	gd, err := newGenDir(dir, generation)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(gd)
		}
	}()
	m := NewMapping()
	byShard := make([][]*Package, shards)
	for i := range pkgs {
		s := shardFor(pkgs[i].Name, shards)
		byShard[s] = append(byShard[s], &pkgs[i])
	}
	errs := make([]error, shards)
	var wg sync.WaitGroup
	for s := range shards {
		wg.Go(func() { errs[s] = buildShard(filepath.Join(gd, fmt.Sprintf("s%d", s)), gd, m, byShard[s]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("index: build: %w", err)
	}
	if err := switchCurrent(dir, gd, &indexMeta{Format: indexFormat, Generation: generation, Shards: shards, Docs: len(pkgs)}); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	ok = true
	return nil
}

// buildShard writes one index shard at path holding pkgs.
func buildShard(path, tmp string, m mapping.IndexMapping, pkgs []*Package) error {
	if len(pkgs) == 0 { // bleve's builder cannot write an empty index
		idx, err := bleve.NewUsing(path, m, bleve.Config.DefaultIndexType, bleve.Config.DefaultKVStore, nil)
		if err == nil {
			err = idx.Close()
		}
		return err
	}
	b, err := bleve.NewBuilder(path, m, map[string]any{"buildPathPrefix": tmp, "batchSize": 1000})
	if err != nil {
		return err
	}
	for _, p := range pkgs {
		if err := b.Index(p.Name, docOf(p)); err != nil {
			b.Close()
			return err
		}
	}
	return b.Close()
}

// updateIndex applies changed and deleted packages to the index generation
// fromGen, producing generation toGen. It returns errIndexStale (or an
// open error) when the index is not usable for that: the caller rebuilds.
func updateIndex(dir string, fromGen, toGen int64, changed []Package, deleted []string) error {
	unlock, err := lockDir(dir)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	defer unlock()
	cur, meta, err := readCurrent(dir)
	if err != nil {
		return err
	}
	if meta.Generation != fromGen {
		return errIndexStale
	}
	gd, err := newGenDir(dir, toGen)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(gd)
		}
	}()
	type shardOps struct {
		index  []*Package
		delete []string
	}
	ops := make([]shardOps, meta.Shards)
	for i := range changed {
		s := shardFor(changed[i].Name, meta.Shards)
		ops[s].index = append(ops[s].index, &changed[i])
	}
	for _, n := range deleted {
		s := shardFor(n, meta.Shards)
		ops[s].delete = append(ops[s].delete, n)
	}
	docs := meta.Docs
	for s := 0; s < meta.Shards; s++ {
		name := fmt.Sprintf("s%d", s)
		if err := linkTree(filepath.Join(cur, name), filepath.Join(gd, name)); err != nil {
			return fmt.Errorf("index: %w", err)
		}
		if len(ops[s].index) == 0 && len(ops[s].delete) == 0 {
			continue
		}
		idx, err := bleve.OpenUsing(filepath.Join(gd, name), map[string]any{"bolt_timeout": "10s"})
		if err != nil {
			return fmt.Errorf("index: open %s: %w", name, err)
		}
		before, _ := idx.DocCount()
		b := idx.NewBatch()
		for _, n := range ops[s].delete {
			b.Delete(n)
		}
		for _, p := range ops[s].index {
			if err := b.Index(p.Name, docOf(p)); err != nil {
				idx.Close()
				return fmt.Errorf("index: %w", err)
			}
		}
		if err := idx.Batch(b); err != nil {
			idx.Close()
			return fmt.Errorf("index: %w", err)
		}
		// Every update adds a segment; merge them before they slow
		// searches down.
		if segs, _ := filepath.Glob(filepath.Join(gd, name, "store", "*.zap")); len(segs) >= maxSegments {
			if adv, err := idx.Advanced(); err == nil {
				if sc, ok := adv.(*scorch.Scorch); ok {
					if err := sc.ForceMerge(context.Background(), &mergeplan.SingleSegmentMergePlanOptions); err != nil {
						idx.Close()
						return fmt.Errorf("index: merge: %w", err)
					}
				}
			}
		}
		after, _ := idx.DocCount()
		if err := idx.Close(); err != nil {
			return fmt.Errorf("index: %w", err)
		}
		docs += int(after) - int(before)
	}
	if err := switchCurrent(dir, gd, &indexMeta{Format: indexFormat, Generation: toGen, Shards: meta.Shards, Docs: docs}); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	ok = true
	return nil
}

// followIndex brings the index in dir from generation g to m's, the
// catalog's committed manifest, by re-indexing the package shards written
// after g (each shard's Gen in the manifest; a shard written by another
// process is found the same way as one written by this one). It returns
// errIndexStale when the index is not at g any more, or when so many
// shards changed that a rebuild costs less.
//
// The shards are read after m: one rewritten meanwhile is read newer than
// m says, and has a Gen above m's generation in the next manifest, so the
// next catch-up re-indexes it again.
func followIndex(ctx context.Context, st *store.Store, dir string, m *manifest, g int64, o *BuildOptions) error {
	var ids []int
	for s, ss := range m.ShardStats {
		if ss.Gen == 0 || ss.Gen > g {
			ids = append(ids, s)
		}
	}
	if len(ids) > PackageShards/4 {
		return errIndexStale
	}
	shards := make([][]Package, len(ids))
	err := work.Each(ctx, max(4, runtime.GOMAXPROCS(0)), len(ids), func(i int) error {
		p, err := readShard(ctx, st, ids[i])
		shards[i] = p
		return err
	})
	if err != nil {
		return err
	}
	x, err := OpenIndex(dir)
	if err != nil {
		return err
	}
	defer x.Close()
	if x.Generation != g {
		return errIndexStale
	}
	var changed []Package
	var deleted []string
	for i, s := range ids {
		keep := make(map[string]bool, len(shards[i]))
		for _, p := range shards[i] {
			keep[p.Name] = true
		}
		changed = append(changed, shards[i]...)
		had, err := x.shardDocs(s)
		if err != nil {
			return err
		}
		for _, n := range had {
			if !keep[n] {
				deleted = append(deleted, n)
			}
		}
	}
	x.Close()
	o.Logger.Debug("search index catching up", "from", g, "to", m.Generation, "shards", len(ids), "packages", len(changed), "deleted", len(deleted))
	return updateIndex(dir, g, m.Generation, changed, deleted)
}

// shardDocs lists the packages indexed from catalog package shard s.
func (x *Index) shardDocs(s int) ([]string, error) {
	q := query.NewTermQuery(shardTerm(s))
	q.SetField(FieldShard)
	for size := 1024; ; {
		req := bleve.NewSearchRequestOptions(q, size, 0, false)
		req.Score = bleve.ScoreNone
		res, err := x.alias.Search(req)
		if err != nil {
			return nil, fmt.Errorf("index: %w", err)
		}
		if uint64(len(res.Hits)) >= res.Total {
			out := make([]string, len(res.Hits))
			for i, h := range res.Hits {
				out[i] = h.ID
			}
			return out, nil
		}
		size = int(res.Total)
	}
}

// linkTree copies a bleve index folder, hard-linking its immutable
// segment files (*.zap) and copying everything else (root.bolt is
// rewritten in place by bleve).
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if strings.HasSuffix(p, ".zap") {
			if err := os.Link(p, target); err == nil {
				return nil
			}
		}
		return copyFile(p, target)
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Index is an open, read-only search index generation.
type Index struct {
	// Dir is the generation folder.
	Dir string
	// Generation is the catalog generation it reflects.
	Generation int64
	// Docs is the number of packages indexed.
	Docs   int
	shards []bleve.Index
	alias  bleve.Index
}

// OpenIndex opens the current generation of the index in dir read-only.
// It returns ErrNoIndex (wrapped or not) when there is none and another
// error when it is unreadable; RebuildIndex repairs both.
func OpenIndex(dir string) (*Index, error) {
	gd, m, err := readCurrent(dir)
	if err != nil {
		return nil, err
	}
	x := &Index{Dir: gd, Generation: m.Generation, Docs: m.Docs}
	for s := 0; s < m.Shards; s++ {
		idx, err := bleve.OpenUsing(filepath.Join(gd, fmt.Sprintf("s%d", s)), map[string]any{"read_only": true, "bolt_timeout": "10s"})
		if err != nil {
			x.Close()
			return nil, fmt.Errorf("index: open %s: %w", gd, err)
		}
		x.shards = append(x.shards, idx)
	}
	if len(x.shards) == 1 {
		x.alias = x.shards[0]
	} else {
		x.alias = bleve.NewIndexAlias(x.shards...)
	}
	return x, nil
}

// Close closes the index.
func (x *Index) Close() error {
	var errs []error
	for _, s := range x.shards {
		errs = append(errs, s.Close())
	}
	x.shards = nil
	return errors.Join(errs...)
}

// Bleve is the index to search (an alias over the shards).
func (x *Index) Bleve() bleve.Index { return x.alias }

// Shards are the bleve indexes, for term-dictionary walks.
func (x *Index) Shards() []bleve.Index { return x.shards }

// Summaries loads the stored summaries of the packages with the given
// names (document IDs).
func (x *Index) Summaries(names []string) (map[string]Summary, error) {
	out := make(map[string]Summary, len(names))
	if len(names) == 0 {
		return out, nil
	}
	req := bleve.NewSearchRequestOptions(query.NewDocIDQuery(names), len(names), 0, false)
	req.Fields = []string{FieldSummary}
	req.Score = bleve.ScoreNone
	res, err := x.alias.Search(req)
	if err != nil {
		return nil, err
	}
	for _, h := range res.Hits {
		raw, _ := h.Fields[FieldSummary].(string)
		var s Summary
		if err := json.Unmarshal([]byte(raw), &s); err != nil {
			return nil, fmt.Errorf("index: summary of %s: %w", h.ID, err)
		}
		out[h.ID] = s
	}
	return out, nil
}

// RebuildIndex rebuilds the search index in dir from the catalog in the
// bucket alone.
func RebuildIndex(ctx context.Context, st *store.Store, dir string, shards int) error {
	cat, m, err := load(ctx, st)
	if err != nil {
		return err
	}
	if shards < 1 {
		shards = (&BuildOptions{}).withDefaults(st).IndexShards
	}
	return BuildIndex(dir, cat.Packages, m.Generation, shards)
}

// EnsureIndex opens the index in dir, first bringing it to the catalog's
// generation when it is behind (re-indexing the package shards written
// since, see followIndex) or rebuilding it from the bucket when it is
// missing, unreadable, too far behind or ahead. rebuilt tells whether it
// rebuilt.
func EnsureIndex(ctx context.Context, st *store.Store, dir string) (x *Index, rebuilt bool, err error) {
	m, err := readManifest(ctx, st)
	gen := int64(0)
	switch {
	case err == nil:
		gen = m.Generation
	case !errors.Is(err, store.ErrNotFound):
		return nil, false, err
	}
	x, err = OpenIndex(dir)
	if err == nil && (x.Generation == gen || gen == 0) {
		return x, false, nil
	}
	if gen == 0 {
		if x != nil {
			x.Close()
		}
		return nil, false, ErrNoCatalog
	}
	var g int64 = -1
	if x != nil {
		g = x.Generation
		x.Close()
	}
	o := (&BuildOptions{}).withDefaults(st)
	if g < 0 || g > gen || followIndex(ctx, st, dir, m, g, &o) != nil {
		if err := RebuildIndex(ctx, st, dir, 0); err != nil {
			return nil, false, err
		}
		rebuilt = true
	}
	x, err = OpenIndex(dir)
	return x, rebuilt, err
}
