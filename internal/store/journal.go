package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/work"
)

// The path journal.
//
// Every narinfo nixrepo writes into a repository (batch ingest, server
// uploads, pull-through, virtual repositories) is also noted in the
// repository's journal: the store path, NarSize, FileSize and the time of
// the write. Notes collect in memory and are written in batches, one
// object per flush:
//
//	_nixrepo/repos/<repo>/journal/<unix nanoseconds, 20 digits>-<random>.s2
//
// (an S2 stream of lines "<store path>\t<NarSize>\t<FileSize>\t<unix
// ns>\n"; objects ending in .zst, from earlier versions, are zstd).
// The index stage reads the journal instead of opening every narinfo: a
// catalog built from scratch then costs a few object reads rather than one
// per store path. The journal is a cache, never the truth: the listing of
// narinfos decides what exists, a path without a note (written by another
// tool, or by a writer that stopped before flushing) is read from its
// narinfo, and a note whose narinfo is gone is ignored. Narinfos are
// write-once, so a note stays true while its narinfo exists; when a path
// is noted twice the newest note wins.

// JournalRecord is what the journal keeps of one narinfo.
type JournalRecord struct {
	StorePath string // absolute
	NarSize   uint64
	FileSize  uint64
	Time      int64 // unix nanoseconds of the write
}

// HashPart is the record's store path hash.
func (r *JournalRecord) HashPart() string {
	base := strings.TrimPrefix(r.StorePath, nix.StoreDir+"/")
	if len(base) < nix.HashPartLen {
		return ""
	}
	return base[:nix.HashPartLen]
}

const (
	journalExt    = ".s2"
	oldJournalExt = ".zst"
	// ContentTypeS2 is the content type of S2 streams.
	ContentTypeS2 = "application/x-snappy-framed"
)

// JournalPrefix is where repository repo keeps its journal.
func JournalPrefix(repo string) string { return reposDir + repo + "/journal/" }

type journal struct {
	mu      sync.Mutex
	pending map[string][]JournalRecord // repository → notes not yet written
}

// PutNarInfo writes a narinfo as ni.Bytes() (write-once: ErrExists when the path is
// already there) and notes it in the repository's journal.
func (c *Cache) PutNarInfo(ctx context.Context, ni *nix.NarInfo) error {
	err := c.Put(ctx, NarInfoFile(ni.StorePath.HashPart()), ni.Bytes(), &WriteOptions{ContentType: ContentTypeNarInfo, IfNotExist: true})
	if err != nil {
		return err
	}
	c.Note(JournalRecord{StorePath: ni.StorePath.Absolute(), NarSize: ni.NarSize, FileSize: ni.FileSize, Time: time.Now().UnixNano()})
	return nil
}

// Note adds a record to the repository's journal; FlushJournal (or Close)
// writes it. Root caches (source folders) keep no journal.
func (c *Cache) Note(r JournalRecord) {
	if c.prefix == "" {
		return
	}
	j := &c.st.journal
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.pending == nil {
		j.pending = map[string][]JournalRecord{}
	}
	j.pending[c.name] = append(j.pending[c.name], r)
}

// FlushJournal writes the notes taken since the last flush, one object per
// repository. Notes that could not be written are kept for the next flush.
func (s *Store) FlushJournal(ctx context.Context) error {
	j := &s.journal
	j.mu.Lock()
	pending := j.pending
	j.pending = nil
	j.mu.Unlock()
	var errs []error
	for repo, recs := range pending {
		if err := s.WriteJournal(ctx, repo, recs); err != nil {
			errs = append(errs, err)
			j.mu.Lock()
			if j.pending == nil {
				j.pending = map[string][]JournalRecord{}
			}
			j.pending[repo] = append(recs, j.pending[repo]...)
			j.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

// WriteJournal writes recs as one new journal object of repo.
func (s *Store) WriteJournal(ctx context.Context, repo string, recs []JournalRecord) error {
	if len(recs) == 0 {
		return nil
	}
	var b bytes.Buffer
	b.Grow(len(recs) * 96)
	for _, r := range recs {
		b.WriteString(r.StorePath)
		b.WriteByte('\t')
		b.WriteString(strconv.FormatUint(r.NarSize, 10))
		b.WriteByte('\t')
		b.WriteString(strconv.FormatUint(r.FileSize, 10))
		b.WriteByte('\t')
		b.WriteString(strconv.FormatInt(r.Time, 10))
		b.WriteByte('\n')
	}
	var rnd [4]byte
	rand.Read(rnd[:])
	key := fmt.Sprintf("%s%020d-%s%s", JournalPrefix(repo), time.Now().UnixNano(), hex.EncodeToString(rnd[:]), journalExt)
	return s.Put(ctx, key, AppendS2(nil, b.Bytes()), &WriteOptions{ContentType: ContentTypeS2, IfNotExist: true})
}

// JournalObjects lists the keys of repo's journal objects, oldest first.
func (s *Store) JournalObjects(ctx context.Context, repo string) ([]string, error) {
	var keys []string
	err := s.List(ctx, JournalPrefix(repo), true, func(o Object) error {
		if !o.Dir && (strings.HasSuffix(o.Key, journalExt) || strings.HasSuffix(o.Key, oldJournalExt)) {
			keys = append(keys, o.Key)
		}
		return nil
	})
	slices.Sort(keys)
	return keys, err
}

// JournalWrittenBefore keeps the journal object keys written before t (by
// the time in their names). Compaction replaces only those (and damaged
// ones): a newer object may note narinfos written after the caller listed
// the narinfos.
func JournalWrittenBefore(keys []string, t time.Time) []string {
	var out []string
	for _, k := range keys {
		name := k[strings.LastIndexByte(k, '/')+1:]
		stamp, _, _ := strings.Cut(name, "-")
		if ns, err := strconv.ParseInt(stamp, 10, 64); err == nil && ns < t.UnixNano() {
			out = append(out, k)
		}
	}
	return out
}

// ReadJournal reads repo's journal: the newest note of each store path (by
// hash part) and the keys of the objects read. Objects that do not decode
// are listed in damaged (their notes are ignored; CompactJournal with
// them among keys removes them); one that vanished meanwhile (compacted)
// is skipped.
func (s *Store) ReadJournal(ctx context.Context, repo string) (recs map[string]JournalRecord, keys, damaged []string, err error) {
	listed, err := s.JournalObjects(ctx, repo)
	if err != nil {
		return nil, nil, nil, err
	}
	// Objects are read side by side (a remote bucket answers each GET in
	// tens of milliseconds; an uncompacted journal has one object per
	// flush), then taken in listing order.
	type part struct {
		recs    []JournalRecord
		gone    bool // deleted since the listing (compacted)
		damaged bool
	}
	parts := make([]part, len(listed))
	err = work.Each(ctx, 8, len(listed), func(i int) error {
		b, err := s.Get(ctx, listed[i])
		if errors.Is(err, ErrNotFound) {
			parts[i].gone = true
			return nil
		}
		if err != nil {
			return err
		}
		decode := DecodeS2
		if strings.HasSuffix(listed[i], oldJournalExt) {
			decode = decodeZstd
		}
		raw, err := decode(b)
		if err == nil {
			parts[i].recs, err = decodeJournal(raw)
		}
		parts[i].damaged = err != nil
		return nil
	})
	if err != nil {
		return nil, nil, nil, err
	}
	total := 0
	for i, p := range parts {
		switch {
		case p.gone:
			continue
		case p.damaged:
			damaged = append(damaged, listed[i])
		}
		keys = append(keys, listed[i])
		total += len(p.recs)
	}
	recs = make(map[string]JournalRecord, total)
	for _, p := range parts {
		for _, r := range p.recs {
			h := r.HashPart()
			if old, ok := recs[h]; !ok || r.Time >= old.Time {
				recs[h] = r
			}
		}
	}
	return recs, keys, damaged, nil
}

// decodeJournal parses a journal object's lines. It takes raw over: the
// records' store paths are substrings of it, so it must not change
// afterwards (ReadJournal passes the buffer it just decompressed). A
// compacted journal of 100k paths is 9 MB, which a copy would fault in
// again.
func decodeJournal(raw []byte) ([]JournalRecord, error) {
	text := unsafe.String(unsafe.SliceData(raw), len(raw))
	out := make([]JournalRecord, 0, strings.Count(text, "\n"))
	for n := 1; len(text) > 0; n++ {
		i := strings.IndexByte(text, '\n')
		if i < 0 {
			return nil, fmt.Errorf("line %d: not terminated", n)
		}
		line := text[:i]
		text = text[i+1:]
		var f [4]string
		rest := line
		for k := range 3 {
			var ok bool
			if f[k], rest, ok = strings.Cut(rest, "\t"); !ok {
				return nil, fmt.Errorf("line %d: malformed record %q", n, line)
			}
		}
		f[3] = rest
		var r JournalRecord
		var err1, err2, err3 error
		r.StorePath = f[0]
		r.NarSize, err1 = strconv.ParseUint(f[1], 10, 64)
		r.FileSize, err2 = strconv.ParseUint(f[2], 10, 64)
		r.Time, err3 = strconv.ParseInt(f[3], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || !nix.IsHashPart(r.HashPart()) {
			return nil, fmt.Errorf("line %d: malformed record %q", n, line)
		}
		out = append(out, r)
	}
	return out, nil
}

// CompactJournal replaces the journal objects keys (as returned by
// ReadJournal) with one object holding recs: the new object is written
// before the old ones are deleted, so a concurrent reader always finds
// every note in one or the other (or reads the narinfo).
func (s *Store) CompactJournal(ctx context.Context, repo string, recs []JournalRecord, keys []string) error {
	if err := s.WriteJournal(ctx, repo, recs); err != nil {
		return err
	}
	var errs []error
	for _, k := range keys {
		if err := s.Delete(ctx, k); err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
