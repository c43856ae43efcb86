package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nixrepo/nixrepo/internal/work"

	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

// Options tune Run. The zero value is not usable: Key is required.
type Options struct {
	// Key signs every accepted path (signatures already present are kept).
	Key nix.SecretKey
	// Workers is the number of paths verified in parallel (≥ 1).
	Workers int
	// Consume deletes accepted and already-present paths from the source
	// after they are safely in the repository, so the next run only does
	// new work. Refused paths are always left in place.
	Consume bool
	// Progress, if set, is called as paths finish verification.
	Progress func(Progress)
	// Logger receives debug events; nil discards them.
	Logger *slog.Logger
}

// PathReport is the outcome for one store path (or one unreadable narinfo).
type PathReport struct {
	StorePath string  `json:"storePath"`
	Outcome   Outcome `json:"outcome"`
	Reason    string  `json:"reason,omitempty"`
	NarSize   uint64  `json:"narSize,omitempty"`
	FileSize  uint64  `json:"fileSize,omitempty"`
	// NarStored is false when an identical NAR file was already stored.
	NarStored bool `json:"narStored,omitempty"`
}

// Report summarises a Run.
type Report struct {
	Repo     string `json:"repo"`
	Source   string `json:"source"`
	Accepted int    `json:"accepted"`
	Present  int    `json:"present"`
	Refused  int    `json:"refused"`
	Gone     int    `json:"gone"` // left the source while read (see Gone)
	Consumed int    `json:"consumed"`
	// Skipped explains a source that was not read at all.
	Skipped   string       `json:"skipped,omitempty"`
	BytesRead int64        `json:"bytesRead"`    // NAR file bytes read from the source
	Written   int64        `json:"bytesWritten"` // NAR file bytes newly stored
	Duration  Duration     `json:"duration"`
	Paths     []PathReport `json:"paths"`
}

// candidate is one narinfo of the source as it moves through the stages.
type candidate struct {
	hash    string // from the narinfo file name
	ni      *nix.NarInfo
	srcNar  string // the NAR file, relative to the source
	dstNar  string // repository-relative NAR name (canonical)
	m       Measured
	stored  bool // this run stored the NAR file
	outcome Outcome
	reason  string
}

func (c *candidate) refuse(format string, args ...any) {
	c.outcome = Refused
	c.reason = fmt.Sprintf(format, args...)
}

// sourceNarProblem settles c when err says its NAR file is missing from the
// source or is not a regular file there, and reports whether it did; other
// errors are the caller's. A missing NAR file refuses the path only when its
// narinfo is still in the source: a path another run consumed meanwhile is
// present (that run stored it first) or gone, never refused.
func (in *ingester) sourceNarProblem(ctx context.Context, c *candidate, err error) bool {
	var ee *store.EntryError
	switch {
	case errors.Is(err, store.ErrNotFound):
		if existing, lerr := in.lookup(ctx, c.hash); lerr == nil && existing != nil && existing.NarHash.Equal(c.ni.NarHash) {
			c.outcome, c.reason = Present, ""
			return true
		}
		if ok, serr := in.src.Exists(ctx, store.NarInfoFile(c.hash)); serr == nil && !ok {
			c.outcome, c.reason = Gone, "the path left the source while it was read"
			return true
		}
		c.refuse("NAR file %s is missing from the source", c.ni.URL)
	case errors.As(err, &ee) && ee.Entry == c.ni.URL:
		c.refuse("NAR file refused: %v", ee)
	case errors.As(err, &ee):
		c.refuse("NAR file %s refused: %v", c.ni.URL, ee)
	default:
		return false
	}
	return true
}

func (c *candidate) pathName() string {
	if c.ni != nil && c.ni.StorePath.HashPart() == c.hash {
		return c.ni.StorePath.Absolute()
	}
	return store.NarInfoFile(c.hash)
}

// Run ingests every path of the binary cache src into the repository dst.
//
// Each path is verified in full before anything that points to it becomes
// visible: the narinfo parses by Nix's rules, its NAR file exists, FileSize
// and FileHash match the bytes, the file decompresses to a well-formed NAR
// whose NarSize and NarHash match, and every reference is in the repository or
// accepted in the same batch. Accepted paths are signed with opts.Key; NAR
// files are stored first (once per content), then .ls listings, then narinfos
// in reference order. A path that fails any check is refused with the reason
// and leaves nothing behind.
//
// Open src with store.OpenSource: its writer is not trusted, and a folder
// opened so is read and consumed without following links or opening
// special files (such entries refuse their paths). Narinfos are read with
// at most nix.MaxNarInfoSize bytes.
//
// Run returns an error only when it cannot do its job at all (the source or
// repository is unreadable, or writes fail); refusals are in the Report.
func Run(ctx context.Context, dst, src *store.Cache, opts *Options) (*Report, error) {
	start := time.Now()
	if opts == nil || opts.Key.Name == "" {
		return nil, errors.New("ingest: a signing key is required")
	}
	in := &ingester{dst: dst, src: src, opts: *opts, known: map[string]*nix.NarInfo{}}
	if in.opts.Workers < 1 {
		in.opts.Workers = 1
	}
	if in.opts.Logger == nil {
		in.opts.Logger = slog.New(slog.DiscardHandler)
	}
	cands, err := in.load(ctx)
	if err != nil {
		return nil, err
	}
	// A NAR file this run stored stays in the repository whatever becomes of
	// its path: from the moment it is stored another writer (a server upload
	// of a path with the same NAR file, another run) may rely on it, so only
	// garbage collection, which knows every narinfo, removes unreferenced
	// ones.
	if err := in.verify(ctx, cands); err != nil {
		return nil, err
	}
	in.resolveReferences(ctx, cands)
	if err := in.commit(ctx, cands); err != nil {
		return nil, err
	}
	if err := dst.Store().FlushJournal(ctx); err != nil {
		// The journal only spares the index stage reading narinfos.
		in.opts.Logger.Warn("could not write the path journal", "repo", dst.Name(), "err", err)
	}
	rep := &Report{Repo: dst.Name(), Source: src.Name()}
	if opts.Consume {
		// What is consumed must outlive a crash of this machine: the
		// repository's copy is made durable before the source's is deleted.
		if err := dst.Store().Sync(ctx); err != nil {
			return nil, fmt.Errorf("ingest: making %s durable before consuming %s: %w", dst.Name(), src.Name(), err)
		}
		rep.Consumed, err = in.consume(ctx, cands)
		if err != nil {
			return nil, err
		}
	}
	for _, c := range cands {
		pr := PathReport{StorePath: c.pathName(), Outcome: c.outcome, Reason: c.reason, NarStored: c.stored}
		if c.ni != nil {
			pr.NarSize, pr.FileSize = c.ni.NarSize, c.m.FileSize
		}
		switch c.outcome {
		case Accepted:
			rep.Accepted++
			if c.stored {
				rep.Written += int64(c.m.FileSize)
			}
		case Present:
			rep.Present++
		case Refused:
			rep.Refused++
		case Gone:
			rep.Gone++
		}
		rep.Paths = append(rep.Paths, pr)
	}
	rep.BytesRead = in.bytesRead.Load()
	sort.Slice(rep.Paths, func(i, j int) bool { return rep.Paths[i].StorePath < rep.Paths[j].StorePath })
	rep.Duration = Duration(time.Since(start))
	return rep, nil
}

type ingester struct {
	dst, src  *store.Cache
	opts      Options
	bytesRead atomic.Int64

	mu       sync.Mutex
	known    map[string]*nix.NarInfo // repository narinfos read so far, by hash part (nil = absent)
	narLocks map[string]*sync.Mutex
}

// lockNar serialises work on one repository NAR file name within the run.
func (in *ingester) lockNar(rel string) (unlock func()) {
	in.mu.Lock()
	if in.narLocks == nil {
		in.narLocks = map[string]*sync.Mutex{}
	}
	l, ok := in.narLocks[rel]
	if !ok {
		l = &sync.Mutex{}
		in.narLocks[rel] = l
	}
	in.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// load lists and parses the source's narinfos and sorts out the paths the
// repository already has.
func (in *ingester) load(ctx context.Context) ([]*candidate, error) {
	var hashes []string
	if err := in.src.NarInfos(ctx, func(h string) error { hashes = append(hashes, h); return nil }); err != nil {
		return nil, fmt.Errorf("ingest: listing %s: %w", in.src.Name(), err)
	}
	cands := make([]*candidate, len(hashes))
	err := work.Each(ctx, in.opts.Workers*4, len(hashes), func(i int) error {
		c := &candidate{hash: hashes[i]}
		cands[i] = c
		ni, _, err := in.src.ReadNarInfo(ctx, c.hash)
		if err != nil {
			var pe *nix.ParseError
			var ee *store.EntryError
			switch {
			case errors.Is(err, store.ErrNotFound):
				// Listed, then deleted: another run consumed it.
				c.outcome, c.reason = Gone, "the narinfo left the source while it was read"
			case errors.As(err, &ee):
				c.refuse("narinfo refused: %v", ee)
			case errors.Is(err, store.ErrTooLarge):
				c.refuse("narinfo is larger than %s, the most a narinfo may be", sizeText(nix.MaxNarInfoSize))
			case errors.As(err, &pe):
				c.refuse("malformed narinfo: %v", pe)
			default:
				return err
			}
			return nil
		}
		c.ni = ni
		if ni.StorePath.HashPart() != c.hash {
			c.refuse("narinfo file %s.narinfo describes another store path, %s", c.hash, ni.StorePath.Absolute())
			return nil
		}
		for _, s := range ni.Sigs {
			if err := nix.CheckSignature(s); err != nil {
				c.refuse("malformed signature %q: %v", s, err)
				return nil
			}
		}
		if err := store.CheckRel(ni.URL); err != nil {
			c.refuse("narinfo URL: %v (a binary cache's NAR URL must be relative to the cache)", err)
			return nil
		}
		c.srcNar = ni.URL
		existing, err := in.lookup(ctx, c.hash)
		if err != nil {
			return err
		}
		if existing != nil {
			if existing.NarHash.Equal(ni.NarHash) {
				c.outcome = Present
			} else {
				c.refuse("conflicts with the repository's copy of this store path (repository has NarHash %s, source has %s); the first upload wins", existing.NarHash, ni.NarHash)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ingest: reading %s: %w", in.src.Name(), err)
	}
	return cands, nil
}

// lookup returns the repository's narinfo for hash (nil when absent),
// caching the narinfos found for the run. Absence is not cached: another
// writer may add the path at any moment (a run consuming the same source
// stores a path before it deletes it there), and narinfos, once written,
// stay.
func (in *ingester) lookup(ctx context.Context, hash string) (*nix.NarInfo, error) {
	in.mu.Lock()
	ni, ok := in.known[hash]
	in.mu.Unlock()
	if ok {
		return ni, nil
	}
	ni, _, err := in.dst.ReadNarInfo(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		ni, err = nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the repository: %w", err)
	}
	if ni != nil {
		in.mu.Lock()
		in.known[hash] = ni
		in.mu.Unlock()
	}
	return ni, nil
}

// verify measures every pending candidate's NAR file, storing it in the
// repository in the same pass when it is not there yet.
func (in *ingester) verify(ctx context.Context, cands []*candidate) error {
	var todo []*candidate
	var total int64
	for _, c := range cands {
		if c.outcome == "" {
			todo = append(todo, c)
			total += int64(c.ni.FileSize)
		}
	}
	// Largest first: the long poles start early and the workers finish
	// together.
	sort.SliceStable(todo, func(i, j int) bool { return todo[i].ni.FileSize > todo[j].ni.FileSize })
	var done atomic.Int64
	var doneBytes atomic.Int64
	report := func() {
		if in.opts.Progress != nil {
			in.opts.Progress(Progress{Paths: int(done.Load()), TotalPaths: len(todo), Bytes: doneBytes.Load(), TotalBytes: total})
		}
	}
	report()
	return work.Each(ctx, in.opts.Workers, len(todo), func(i int) error {
		c := todo[i]
		err := in.verifyOne(ctx, c)
		done.Add(1)
		doneBytes.Add(int64(c.ni.FileSize))
		report()
		return err
	})
}

// errSettled: the candidate was settled (refused, present or gone) through
// its fields; not a failure of the run.
var errSettled = errors.New("settled")

// verifyOne returns an error only for failures of the machinery; a bad path
// is refused through c.
func (in *ingester) verifyOne(ctx context.Context, c *candidate) error {
	ni := c.ni
	attrs, err := in.src.Stat(ctx, c.srcNar)
	if in.sourceNarProblem(ctx, c, err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ni.FileSize != 0 && uint64(attrs.Size) != ni.FileSize {
		c.refuse("FileSize mismatch: narinfo claims %d, file %s has %d bytes", ni.FileSize, ni.URL, attrs.Size)
		return nil
	}
	compression := ni.EffectiveCompression()
	o := MeasureOptions{Compression: compression, MaxFileSize: attrs.Size, SizeHint: attrs.Size, NarSize: ni.NarSize}
	check := func(m Measured, err error) error {
		var narErr *NarError
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &narErr) && !ni.FileHash.IsZero() && !ni.FileHash.Equal(m.FileHash):
			// The bytes are not the file the narinfo describes; that is
			// the cause, the decode error only a symptom.
			c.refuse("FileHash mismatch: narinfo claims %s, file has %s (and it does not decode: %v)", ni.FileHash, m.FileHash, err)
			return errSettled
		default:
			c.refuse("NAR file %s: %v", ni.URL, err)
			return errSettled
		}
		if err := CheckClaims(ni, m); err != nil {
			c.refuse("%s", strings.ReplaceAll(err.Error(), "\n", "; "))
			return errSettled
		}
		return nil
	}
	if ni.FileHash.IsZero() {
		// No FileHash claim: the final name is only known once the file
		// is measured; verify first, then copy it (copyFile).
		r, err := in.openSourceNar(ctx, c, true)()
		if err != nil {
			return settled(err)
		}
		defer r.Close()
		m, err := Measure(r, o)
		if err := check(m, err); err != nil {
			return settled(err)
		}
		c.m = m
		c.dstNar = store.NarFile(m.FileHash, compression)
		return settled(in.copyFile(ctx, c))
	}
	// With a FileHash claim the final name is known up front: store while
	// verifying and abort on any mismatch. Paths of the batch sharing a
	// NAR file take turns, so the file is stored once and the others see
	// it.
	c.dstNar = store.NarFile(ni.FileHash, compression)
	unlock := in.lockNar(c.dstNar)
	defer unlock()
	m, stored, err := storeNar(ctx, in.dst, c.dstNar, in.openSourceNar(ctx, c, true), o, measureStored, check)
	if err != nil {
		return settled(err)
	}
	c.m, c.stored = m, stored
	return nil
}

// settled returns err unless it is errSettled.
func settled(err error) error {
	if errors.Is(err, errSettled) {
		return nil
	}
	return err
}

// openSourceNar returns what opens c's NAR file in the source, counting the
// bytes read when count is set. A file that is missing or refused settles
// c (errSettled).
func (in *ingester) openSourceNar(ctx context.Context, c *candidate, count bool) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		r, err := in.src.NewReader(ctx, c.srcNar)
		if in.sourceNarProblem(ctx, c, err) {
			return nil, errSettled
		}
		if err != nil {
			return nil, err
		}
		if count {
			return countingReader{r, &in.bytesRead}, nil
		}
		return r, nil
	}
}

// copyFile stores a verified NAR file whose name was only known after
// measuring it (c.m), unless the repository has it; the copy is measured
// again so nothing unverified is stored. A source file that changed or went
// away since it was measured settles the path (errSettled).
func (in *ingester) copyFile(ctx context.Context, c *candidate) error {
	first := c.m
	_, stored, err := storeNar(ctx, in.dst, c.dstNar, in.openSourceNar(ctx, c, false), MeasureOptions{
		Compression: c.ni.EffectiveCompression(), MaxFileSize: int64(first.FileSize), SizeHint: int64(first.FileSize), NarSize: first.NarSize,
	}, skipStored, func(m Measured, err error) error {
		switch {
		case err == nil && m.FileHash.Equal(first.FileHash):
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			c.refuse("NAR file %s changed while it was ingested: %v", c.ni.URL, err)
		default:
			c.refuse("NAR file %s changed while it was ingested (FileHash %s, then %s)", c.ni.URL, first.FileHash, m.FileHash)
		}
		return errSettled
	})
	c.stored = stored
	return err
}

// resolveReferences refuses every verified path with a reference that is
// neither in the repository nor accepted in this batch, transitively.
func (in *ingester) resolveReferences(ctx context.Context, cands []*candidate) {
	byHash := map[string]*candidate{}
	for _, c := range cands {
		if c.ni != nil {
			byHash[c.hash] = c
		}
	}
	for changed := true; changed; {
		changed = false
		for _, c := range cands {
			if c.outcome != "" {
				continue
			}
			var missing []string
			for _, ref := range c.ni.References {
				h := ref.HashPart()
				if ref == c.ni.StorePath {
					continue
				}
				if b, ok := byHash[h]; ok && b.ni.StorePath == ref {
					switch b.outcome {
					case "", Accepted, Present:
						continue
					case Refused:
						missing = append(missing, fmt.Sprintf("%s (refused in this batch)", ref.Absolute()))
						continue
					}
				}
				existing, err := in.lookup(ctx, h)
				if err == nil && existing != nil && existing.StorePath == ref {
					continue
				}
				if err != nil {
					missing = append(missing, fmt.Sprintf("%s (%v)", ref.Absolute(), err))
				} else {
					missing = append(missing, ref.Absolute())
				}
			}
			if len(missing) > 0 {
				c.refuse("missing references: %s", strings.Join(missing, ", "))
				changed = true
			}
		}
	}
}

// commit writes listings and signed narinfos, references first.
func (in *ingester) commit(ctx context.Context, cands []*candidate) error {
	byHash := map[string]*candidate{}
	var infos []*nix.NarInfo
	for _, c := range cands {
		if c.outcome == "" {
			byHash[c.hash] = c
			infos = append(infos, c.ni)
		}
	}
	for _, ni := range nix.ReferencesFirst(infos) {
		if err := in.commitOne(ctx, byHash[ni.StorePath.HashPart()]); err != nil {
			return err
		}
	}
	return nil
}

func (in *ingester) commitOne(ctx context.Context, c *candidate) error {
	ni := *c.ni
	ni.URL = c.dstNar
	ni.Compression = ni.EffectiveCompression()
	ni.FileHash = c.m.FileHash
	ni.FileSize = c.m.FileSize
	ni.Sigs = append([]string(nil), c.ni.Sigs...)
	if err := ni.Sign(in.opts.Key); err != nil {
		c.refuse("cannot sign: %v", err)
		return nil
	}
	won, err := commitNarInfo(ctx, in.dst, &ni, c.m.Listing, Limits{})
	if err != nil {
		return err
	}
	if !won {
		// Another writer got there first: first writer wins.
		in.mu.Lock()
		delete(in.known, c.hash)
		in.mu.Unlock()
		existing, err := in.lookup(ctx, c.hash)
		if err != nil {
			return err
		}
		if existing != nil && existing.NarHash.Equal(ni.NarHash) {
			c.outcome = Present
		} else if existing != nil {
			c.refuse("conflicts with a copy of this store path written concurrently (NarHash %s); the first upload wins", existing.NarHash)
		}
		return nil
	}
	c.outcome = Accepted
	in.mu.Lock()
	in.known[c.hash] = &ni
	in.mu.Unlock()
	return nil
}

// consume deletes accepted and present paths from the source: the narinfo
// first (so the source never holds a narinfo without its NAR), then the NAR
// file once no remaining narinfo uses it, then the listing. Only regular
// files are deleted, never through a link (see store.OpenSource): a present
// path, whose NAR file was not read, is refused and left whole when that
// file is a link or a special file; an entry found replaced at deletion
// time is left in place.
func (in *ingester) consume(ctx context.Context, cands []*candidate) (int, error) {
	users := map[string]int{}
	for _, c := range cands {
		if c.ni != nil {
			users[c.srcNar]++
		}
	}
	// remove deletes rel; ok is false when it was refused and left in place.
	remove := func(c *candidate, rel string) (ok bool, err error) {
		err = in.src.Delete(ctx, rel)
		switch {
		case err == nil, errors.Is(err, store.ErrNotFound):
			return true, nil
		case errors.Is(err, store.ErrNotRegular):
			in.opts.Logger.Warn("not consuming a source entry that is not a regular file", "path", c.pathName(), "err", err)
			return false, nil
		}
		return false, fmt.Errorf("ingest: consuming %s: %w", c.pathName(), err)
	}
	n := 0
	for _, c := range cands {
		if c.outcome != Accepted && c.outcome != Present {
			continue
		}
		if c.outcome == Present {
			_, err := in.src.Stat(ctx, c.srcNar)
			var ee *store.EntryError
			switch {
			case errors.As(err, &ee):
				c.refuse("NAR file %s refused: %v; nothing of this path was consumed", c.ni.URL, ee)
				continue
			case err != nil && !errors.Is(err, store.ErrNotFound):
				return n, fmt.Errorf("ingest: consuming %s: %w", c.pathName(), err)
			}
		}
		ok, err := remove(c, store.NarInfoFile(c.hash))
		if err != nil {
			return n, err
		}
		if !ok {
			continue
		}
		n++
		users[c.srcNar]--
		if users[c.srcNar] == 0 {
			if _, err := remove(c, c.srcNar); err != nil {
				return n, err
			}
		}
		if _, err := remove(c, store.ListingFile(c.hash)); err != nil {
			return n, err
		}
	}
	return n, nil
}

// sizeText writes a byte count for messages: "1 MiB" when it is a whole
// number of KiB, MiB or GiB, else "N bytes".
func sizeText(n int64) string {
	for _, u := range []struct {
		unit string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d %s", n/u.size, u.unit)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}
