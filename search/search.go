package search

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	bsearch "github.com/blevesearch/bleve/v2/search"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/search/query"

	"github.com/nixrepo/nixrepo/index"
	"github.com/nixrepo/nixrepo/internal/store"
)

// Match says why a package matched, in ranking order.
type Match string

const (
	MatchExact       Match = "exact"       // the name, ignoring case
	MatchPrefix      Match = "prefix"      // the name starts with the query
	MatchWord        Match = "word"        // a word of the name (or attribute path) is or starts with each query word
	MatchFuzzy       Match = "fuzzy"       // the name is within one edit of the query, or each unknown query word within 1 (3–7 characters) or 2 (8 or more) edits of a word of the name; only without an exact match
	MatchDescription Match = "description" // the description has every query word
)

// Options tune Search.
type Options struct {
	// Repos restricts results to these repositories: packages without a
	// version in any of them are dropped, and versions, latest and repos
	// are computed over them only. nil means all repositories; an empty
	// non-nil slice matches nothing.
	Repos []string
	// Limit is the maximum number of results (default 20, at most 1000).
	Limit int
}

// Result is one package found.
type Result struct {
	Name   string `json:"name"`
	Latest string `json:"latest"`
	// NumVersions is len(Versions).
	NumVersions int `json:"numVersions"`
	// Versions, highest first (Nix's version order).
	Versions    []string `json:"versions"`
	Repos       []string `json:"repos"`
	Description string   `json:"description,omitempty"`
	Match       Match    `json:"match"`
}

// ErrEmptyQuery is returned for a query with nothing to search for.
var ErrEmptyQuery = errors.New("empty search query")

const (
	defaultLimit = 20
	maxLimit     = 1000
	// maxScan bounds the terms taken from a term dictionary per shard and
	// repository for prefix matches: walking the dictionary costs about a
	// microsecond a term, and the shortest of the first few hundred
	// names with a prefix are the ones worth showing.
	maxScan = 256
	// maxCandidates bounds the hits ranked in the word and fuzzy tiers.
	maxCandidates = 50
	// maxWordTerms bounds the words a word prefix expands to.
	maxWordTerms = 32
)

// Search finds packages by name: exact names first (ignoring case), then
// names starting with the query (shortest first), then names with a word
// that is or starts with each query word, then fuzzy matches (edit
// distance 1 for words of 3–7 characters, 2 from 8), then packages whose
// description has every query word. A package appears once, under its best
// match.
func Search(idx *index.Index, q string, opts *Options) ([]Result, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Limit <= 0 {
		o.Limit = defaultLimit
	}
	o.Limit = min(o.Limit, maxLimit)
	q = strings.TrimSpace(q)
	if q == "" {
		return nil, ErrEmptyQuery
	}
	s := &searcher{idx: idx, o: o, q: q, lq: strings.ToLower(q), seen: map[string]bool{}}
	if o.Repos != nil && len(o.Repos) == 0 {
		return []Result{}, nil
	}
	s.words = words(s.lq)
	if len(s.words) == 0 {
		return nil, ErrEmptyQuery
	}
	if err := s.names(); err != nil {
		return nil, err
	}
	if !s.full() {
		wq, err := s.wordQuery()
		if err != nil {
			return nil, err
		}
		if err := s.tier(MatchWord, wq, true, s.rankWord); err != nil {
			return nil, err
		}
	}
	// Fuzzy matches only stand in for a missing exact match: after one,
	// they are noise (and the slowest tier). The whole name within one
	// edit first (it also catches a typo that joins or splits words,
	// "lumberjackdev"); a hit there ends the tier for a query of several
	// words (a misspelt full name). Then misspelt words within one edit
	// ("hellp" also finds hello-wayland); two edits (words of 8 or more
	// characters) only when one finds nothing.
	if !s.full() && !s.exact {
		start := len(s.results)
		done := false
		if utf8.RuneCountInString(s.lq) >= 3 {
			nq := query.NewFuzzyQuery(s.lq)
			nq.SetField(index.FieldName)
			nq.SetFuzziness(1)
			if err := s.tier(MatchFuzzy, nq, true, s.rankFuzzy); err != nil {
				return nil, err
			}
			done = len(s.results) > start && len(s.words) > 1
		}
		for edits := 1; edits <= 2 && !done && !s.full(); edits++ {
			fq, more, err := s.fuzzyQuery(edits)
			if err != nil {
				return nil, err
			}
			if fq == nil {
				break
			}
			if err := s.tier(MatchFuzzy, fq, true, s.rankFuzzy); err != nil {
				return nil, err
			}
			done = len(s.results) > start || !more
		}
	}
	if !s.full() {
		mq := query.NewMatchQuery(q)
		mq.SetField(index.FieldDescription)
		mq.SetOperator(query.MatchQueryOperatorAnd)
		if err := s.tier(MatchDescription, mq, false, nil); err != nil {
			return nil, err
		}
	}
	if s.results == nil {
		s.results = []Result{}
	}
	return s.results, nil
}

type searcher struct {
	idx     *index.Index
	o       Options
	q, lq   string
	words   []string
	seen    map[string]bool
	results []Result
	exact   bool // an exact match was found
	terms   map[string]wordTermsResult
}

// wordTermsResult memoizes wordTerms: the word and fuzzy tiers both need it.
type wordTermsResult struct {
	longer []string
	exists bool
}

func (s *searcher) full() bool { return len(s.results) >= s.o.Limit }

// words splits a lower-cased query like the index's word analyzer.
func words(lq string) []string {
	return strings.FieldsFunc(lq, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsNumber(r) })
}

// add appends the packages, in order, that survive the repository filter.
func (s *searcher) add(ids []string, m Match) error {
	var todo []string
	for _, id := range ids {
		if !s.seen[id] {
			todo = append(todo, id)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	sums, err := s.idx.Summaries(todo)
	if err != nil {
		return err
	}
	for _, id := range todo {
		if s.full() {
			return nil
		}
		sum, ok := sums[id]
		if !ok {
			continue
		}
		s.seen[id] = true
		sum, ok = sum.Restrict(s.o.Repos)
		if !ok {
			continue
		}
		s.results = append(s.results, resultOf(&sum, m))
	}
	return nil
}

func resultOf(sum *index.Summary, m Match) Result {
	r := Result{Name: sum.Name, Latest: sum.Latest(), NumVersions: len(sum.Versions), Repos: sum.Repos(),
		Description: sum.Description, Match: m, Versions: make([]string, len(sum.Versions))}
	for i, v := range sum.Versions {
		r.Versions[i] = v.Version
	}
	return r
}

// names runs the exact and prefix tiers from the term dictionaries: the
// lower-cased names (or "<repo>/<name>" with a repository filter) that
// start with the query, shortest first.
func (s *searcher) names() error {
	set := map[string]bool{}
	for _, sh := range s.idx.Shards() {
		if s.o.Repos == nil {
			if err := scanDict(sh, index.FieldName, s.lq, "", set); err != nil {
				return err
			}
			continue
		}
		for _, r := range s.o.Repos {
			if err := scanDict(sh, index.FieldRepoName, r+"/"+s.lq, r+"/", set); err != nil {
				return err
			}
		}
	}
	terms := make([]string, 0, len(set))
	for t := range set {
		terms = append(terms, t)
	}
	sort.Slice(terms, func(i, j int) bool {
		if len(terms[i]) != len(terms[j]) {
			return len(terms[i]) < len(terms[j])
		}
		return terms[i] < terms[j]
	})
	for len(terms) > 0 && !s.full() {
		n := min(len(terms), s.o.Limit-len(s.results)+4)
		chunk := terms[:n]
		terms = terms[n:]
		ids, sums, err := s.namesToSummaries(chunk)
		if err != nil {
			return err
		}
		var exact, prefix []string
		for _, id := range ids {
			if strings.ToLower(id) == s.lq {
				exact = append(exact, id)
			} else {
				prefix = append(prefix, id)
			}
		}
		// Exact case first among exact matches.
		sort.SliceStable(exact, func(i, j int) bool { return exact[i] == s.q && exact[j] != s.q })
		before := len(s.results)
		s.addSummaries(exact, sums, MatchExact)
		s.exact = s.exact || len(s.results) > before
		s.addSummaries(prefix, sums, MatchPrefix)
	}
	return nil
}

// addSummaries appends the packages, in order, that survive the
// repository filter.
func (s *searcher) addSummaries(ids []string, sums map[string]index.Summary, m Match) {
	for _, id := range ids {
		if s.full() {
			return
		}
		sum, ok := sums[id]
		if !ok || s.seen[id] {
			continue
		}
		s.seen[id] = true
		if sum, ok = sum.Restrict(s.o.Repos); ok {
			s.results = append(s.results, resultOf(&sum, m))
		}
	}
}

func scanDict(idx bleve.Index, field, prefix, strip string, set map[string]bool) error {
	d, err := idx.FieldDictPrefix(field, []byte(prefix))
	if err != nil {
		return err
	}
	defer d.Close()
	for n := 0; n < maxScan; n++ {
		e, err := d.Next()
		if err != nil {
			return err
		}
		if e == nil {
			break
		}
		set[strings.TrimPrefix(e.Term, strip)] = true
	}
	return nil
}

// namesToSummaries maps lower-cased names to document IDs (the real
// names), keeping the order of lower (case variants of one name sorted),
// and loads their summaries in the same search.
func (s *searcher) namesToSummaries(lower []string) ([]string, map[string]index.Summary, error) {
	qs := make([]query.Query, len(lower))
	for i, t := range lower {
		tq := query.NewTermQuery(t)
		tq.SetField(index.FieldName)
		qs[i] = tq
	}
	req := bleve.NewSearchRequestOptions(query.NewDisjunctionQuery(qs), 2*len(lower)+8, 0, false)
	req.Score = bleve.ScoreNone
	req.Fields = []string{index.FieldSummary}
	res, err := s.idx.Bleve().Search(req)
	if err != nil {
		return nil, nil, err
	}
	pos := make(map[string]int, len(lower))
	for i, t := range lower {
		pos[t] = i
	}
	ids := make([]string, 0, len(res.Hits))
	sums := make(map[string]index.Summary, len(res.Hits))
	for _, h := range res.Hits {
		raw, _ := h.Fields[index.FieldSummary].(string)
		var sum index.Summary
		if err := json.Unmarshal([]byte(raw), &sum); err != nil {
			return nil, nil, fmt.Errorf("search: summary of %s: %w", h.ID, err)
		}
		ids = append(ids, h.ID)
		sums[h.ID] = sum
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := pos[strings.ToLower(ids[i])], pos[strings.ToLower(ids[j])]
		if a != b {
			return a < b
		}
		return ids[i] < ids[j]
	})
	return ids, sums, nil
}

// repoFilter wraps q so only documents in the filter's repositories match.
func (s *searcher) repoFilter(q query.Query) query.Query {
	if s.o.Repos == nil {
		return q
	}
	rs := make([]query.Query, len(s.o.Repos))
	for i, r := range s.o.Repos {
		tq := query.NewTermQuery(r)
		tq.SetField(index.FieldRepos)
		rs[i] = tq
	}
	return query.NewConjunctionQuery([]query.Query{q, query.NewDisjunctionQuery(rs)})
}

// wordQuery: every query word is a word of the name, or (from two
// characters) starts one.
func (s *searcher) wordQuery() (query.Query, error) {
	var must []query.Query
	for _, w := range s.words {
		terms := []string{w}
		if utf8.RuneCountInString(w) >= 2 {
			more, _, err := s.wordTerms(w)
			if err != nil {
				return nil, err
			}
			terms = append(terms, more...)
		}
		must = append(must, termsQuery(index.FieldWords, terms))
	}
	if len(must) == 1 {
		return must[0], nil
	}
	return query.NewConjunctionQuery(must), nil
}

// wordTerms returns the shortest indexed words that start with w, other
// than w (at most maxWordTerms, from the first maxScan of each shard's
// dictionary), and whether w itself is an indexed word. A bleve prefix
// query would OR every such word, thousands for "lib".
func (s *searcher) wordTerms(w string) (longer []string, exists bool, err error) {
	if c, ok := s.terms[w]; ok {
		return c.longer, c.exists, nil
	}
	defer func() {
		if err == nil {
			if s.terms == nil {
				s.terms = map[string]wordTermsResult{}
			}
			s.terms[w] = wordTermsResult{longer, exists}
		}
	}()
	set := map[string]bool{}
	for _, sh := range s.idx.Shards() {
		if err := scanDict(sh, index.FieldWords, w, "", set); err != nil {
			return nil, false, err
		}
	}
	exists = set[w]
	delete(set, w)
	terms := make([]string, 0, len(set))
	for t := range set {
		terms = append(terms, t)
	}
	sort.Slice(terms, func(i, j int) bool {
		if len(terms[i]) != len(terms[j]) {
			return len(terms[i]) < len(terms[j])
		}
		return terms[i] < terms[j]
	})
	return terms[:min(len(terms), maxWordTerms)], exists, nil
}

func termsQuery(field string, terms []string) query.Query {
	qs := make([]query.Query, len(terms))
	for i, t := range terms {
		tq := query.NewTermQuery(t)
		tq.SetField(field)
		qs[i] = tq
	}
	if len(qs) == 1 {
		return qs[0]
	}
	return query.NewDisjunctionQuery(qs)
}

func fuzziness(w string) int {
	switch n := utf8.RuneCountInString(w); {
	case n < 3:
		return 0
	case n < 8:
		return 1
	default:
		return 2
	}
}

// fuzzyQuery: every query word is within its fuzziness of (or a prefix
// of) a word of the name. A query word that is an indexed word, or starts
// one, is taken as typed: a typo is one word of the query, and the
// automaton of each fuzzy word (and the terms it matches) is the cost of
// this tier. (A one-word name is one word; the whole-name automaton over
// every name costs more and finds nothing more.)
//
// maxEdits caps each word's fuzziness; more reports whether some word
// would allow more edits than that.
func (s *searcher) fuzzyQuery(maxEdits int) (q query.Query, more bool, err error) {
	var must []query.Query
	fuzzy := false
	for _, w := range s.words {
		terms := []string{w}
		known := false
		if utf8.RuneCountInString(w) >= 2 {
			longer, exists, err := s.wordTerms(w)
			if err != nil {
				return nil, false, err
			}
			terms = append(terms, longer...)
			known = exists || len(longer) > 0
		}
		wq := termsQuery(index.FieldWords, terms)
		if f := fuzziness(w); f > 0 && !known {
			more = more || f > maxEdits
			fq := query.NewFuzzyQuery(w)
			fq.SetField(index.FieldWords)
			fq.SetFuzziness(min(f, maxEdits))
			wq = query.NewDisjunctionQuery([]query.Query{wq, fq})
			fuzzy = true
		}
		must = append(must, wq)
	}
	if !fuzzy {
		return nil, false, nil
	}
	if len(must) == 1 {
		return must[0], more, nil
	}
	return query.NewConjunctionQuery(must), more, nil
}

// tier runs a bleve query for one match tier. With rank, up to
// maxCandidates matches with the shortest names (see shortestHits) are
// re-ordered by rank (lower first, then shorter name, then name): a
// common word matches thousands of packages, and scoring them all only to
// keep a few dozen was the slowest part of a search. Without rank,
// bleve's score order is kept.
func (s *searcher) tier(m Match, q query.Query, useRank bool, rank func(name string) int) error {
	var ids []string
	if useRank {
		hits, err := shortestHits(s.idx.Shards(), s.repoFilter(q), maxCandidates)
		if err != nil {
			return err
		}
		for _, id := range hits {
			if !s.seen[id] {
				ids = append(ids, id)
			}
		}
		ranks := make(map[string]int, len(ids))
		for _, id := range ids {
			ranks[id] = rank(strings.ToLower(id))
		}
		sort.SliceStable(ids, func(i, j int) bool {
			a, b := ids[i], ids[j]
			if ranks[a] != ranks[b] {
				return ranks[a] < ranks[b]
			}
			if len(a) != len(b) {
				return len(a) < len(b)
			}
			return a < b
		})
	} else {
		need := s.o.Limit - len(s.results)
		req := bleve.NewSearchRequestOptions(s.repoFilter(q), need+len(s.seen), 0, false)
		res, err := s.idx.Bleve().Search(req)
		if err != nil {
			return err
		}
		for _, h := range res.Hits {
			if !s.seen[h.ID] {
				ids = append(ids, h.ID)
			}
		}
	}
	for len(ids) > 0 && !s.full() {
		n := min(len(ids), s.o.Limit-len(s.results)+4)
		if err := s.add(ids[:n], m); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

// lengthBands split name lengths for shortestHits.
var lengthBands = [][2]int{{0, 8}, {9, 12}, {13, 16}, {17, 22}, {23, 30}, {31, 999}}

// shortestHits returns the IDs of about k documents matching q with the
// shortest names: all matches when there are at most k per shard, else
// the matches of the shortest length bands until k are found (within the
// last band, the first in index order).
func shortestHits(shards []bleve.Index, q query.Query, k int) ([]string, error) {
	ids, complete, err := firstHits(shards, q, k)
	if err != nil || complete {
		return ids, err
	}
	ids = ids[:0]
	for _, b := range lengthBands {
		lo, hi := index.NameLength(b[0]), index.NameLength(b[1])
		incl := true
		band := query.NewTermRangeInclusiveQuery(lo, hi, &incl, &incl)
		band.SetField(index.FieldNameLength)
		more, _, err := firstHits(shards, query.NewConjunctionQuery([]query.Query{q, band}), k-len(ids))
		if err != nil {
			return nil, err
		}
		ids = append(ids, more...)
		if len(ids) >= k {
			break
		}
	}
	return ids, nil
}

// firstHits returns the IDs of the first k documents of each shard, in
// index order, that match q, without scoring: the search stops there.
// complete reports that no shard had more.
func firstHits(shards []bleve.Index, q query.Query, k int) (ids []string, complete bool, err error) {
	complete = true
	for _, sh := range shards {
		adv, err := sh.Advanced()
		if err != nil {
			return nil, false, err
		}
		r, err := adv.Reader()
		if err != nil {
			return nil, false, err
		}
		err = func() error {
			defer r.Close()
			sr, err := q.Searcher(context.Background(), r, sh.Mapping(), bsearch.SearcherOptions{Score: "none"})
			if err != nil {
				return err
			}
			defer sr.Close()
			sctx := &bsearch.SearchContext{DocumentMatchPool: bsearch.NewDocumentMatchPool(sr.DocumentMatchPoolSize(), 0), IndexReader: r}
			for n := 0; ; n++ {
				dm, err := sr.Next(sctx)
				if err != nil {
					return err
				}
				if dm == nil {
					break
				}
				if n == k {
					complete = false
					break
				}
				id, err := r.ExternalID(dm.IndexInternalID)
				if err != nil {
					return err
				}
				ids = append(ids, id)
				sctx.DocumentMatchPool.Put(dm)
			}
			return nil
		}()
		if err != nil {
			return nil, false, err
		}
	}
	return ids, complete, nil
}

// rankWord: names with a word equal to a query word before names where
// query words only start a word.
func (s *searcher) rankWord(name string) int {
	nw := words(name)
	rank := 0
	for _, w := range s.words {
		found := false
		for _, x := range nw {
			if x == w {
				found = true
				break
			}
		}
		if !found {
			rank++
		}
	}
	return rank
}

// rankFuzzy is the smallest edit distance between the query (or a query
// word) and the name (or a word of it).
func (s *searcher) rankFuzzy(name string) int {
	best := levenshtein(s.lq, name)
	nw := words(name)
	for _, w := range s.words {
		for _, x := range nw {
			best = min(best, levenshtein(w, x))
		}
	}
	return best
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			c := 1
			if ra[i-1] == rb[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// ---------------------------------------------------------------------------
// Engine

// Engine serves searches and package lookups for a long-running process
// (the server): it keeps the current index generation open, switches to a
// newer one when an indexer makes it current (checked at most once a
// second), and rebuilds the index from the bucket when it is missing or
// unreadable. Package details come from the catalog in the bucket.
type Engine struct {
	st  *store.Store
	dir string

	mu      sync.RWMutex
	idx     *index.Index
	checked time.Time
}

// NewEngine returns an engine over the index folder dir and the catalog in
// st. Nothing is opened until the first search.
func NewEngine(st *store.Store, dir string) *Engine { return &Engine{st: st, dir: dir} }

// Open opens (and if needed rebuilds) the index now rather than on the
// first search.
func (e *Engine) Open(ctx context.Context) error {
	_, release, err := e.current(ctx)
	if err == nil {
		release()
	}
	return err
}

// current returns the open index, holding a read lock until release.
func (e *Engine) current(ctx context.Context) (*index.Index, func(), error) {
	e.mu.RLock()
	if e.idx != nil && time.Since(e.checked) < time.Second {
		return e.idx, e.mu.RUnlock, nil
	}
	e.mu.RUnlock()

	e.mu.Lock()
	if e.idx == nil {
		x, _, err := index.EnsureIndex(ctx, e.st, e.dir)
		if err != nil {
			e.mu.Unlock()
			return nil, nil, err
		}
		e.idx = x
	} else if time.Since(e.checked) >= time.Second {
		if g, err := index.IndexGeneration(e.dir); err == nil && g != e.idx.Generation {
			if x, err := index.OpenIndex(e.dir); err == nil {
				e.idx.Close()
				e.idx = x
			}
		}
	}
	e.checked = time.Now()
	e.mu.Unlock()
	e.mu.RLock()
	if e.idx == nil {
		e.mu.RUnlock()
		return nil, nil, index.ErrNoIndex
	}
	return e.idx, e.mu.RUnlock, nil
}

// Refresh makes the next search check for a newer index generation
// (otherwise checked at most once a second).
func (e *Engine) Refresh() {
	e.mu.Lock()
	e.checked = time.Time{}
	e.mu.Unlock()
}

// Search runs Search on the current index.
func (e *Engine) Search(ctx context.Context, q string, opts *Options) ([]Result, error) {
	x, release, err := e.current(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	return Search(x, q, opts)
}

// Package returns a package of the catalog (index.ErrNoPackage when
// unknown).
func (e *Engine) Package(ctx context.Context, name string) (*index.Package, error) {
	return index.LoadPackage(ctx, e.st, name)
}

// Generation is the catalog generation of the open index (0 before the
// first search).
func (e *Engine) Generation() int64 {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.idx == nil {
		return 0
	}
	return e.idx.Generation
}

// Close closes the index.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.idx == nil {
		return nil
	}
	err := e.idx.Close()
	e.idx = nil
	return err
}

// Response is the JSON answer of the search API and `nixrepo search --json`.
type Response struct {
	Query   string   `json:"query"`
	Repo    string   `json:"repo,omitempty"`
	Results []Result `json:"results"`
}

// String renders a result on one line (for logs and tests).
func (r Result) String() string {
	return fmt.Sprintf("%s %s (%d versions, %s) [%s]", r.Name, r.Latest, r.NumVersions, strings.Join(r.Repos, ","), r.Match)
}
