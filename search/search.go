package search

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/search/query"

	"github.com/nixrepo/nixrepo/index"
)

// Match says why a package matched, in ranking order.
type Match string

const (
	MatchExact       Match = "exact"       // the name, ignoring case
	MatchPrefix      Match = "prefix"      // the name starts with the query
	MatchWord        Match = "word"        // a word of the name (or attribute path) is or starts with each query word
	MatchFuzzy       Match = "fuzzy"       // the name is within one edit of the query, or each unknown query word within 1 (3–7 characters) or 2 (8–32) edits of a word of the name; only without an exact match
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
	// Limits bound the query (see CheckQuery).
	Limits Limits
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
// distance 1 for words of 3–7 characters, 2 for 8–32), then packages whose
// description has every query word. A package appears once, under its best
// match. The query is checked against opts.Limits first (see CheckQuery);
// fuzzy matching is bounded further: the whole name only for queries of at
// most 64 characters, words of 3 to 32 characters only, and no fuzzy word
// tier for a query with more than 4 unknown words.
func Search(idx *index.Index, q string, opts *Options) ([]Result, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Limit <= 0 {
		o.Limit = defaultLimit
	}
	o.Limit = min(o.Limit, maxLimit)
	if err := CheckQuery(q, o.Limits); err != nil {
		return nil, err
	}
	q = strings.TrimSpace(q)
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
		if n := utf8.RuneCountInString(s.lq); n >= minFuzzyWord && n <= maxFuzzyName {
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

// add fetches the packages' summaries and appends, in order, those that
// survive the repository filter.
func (s *searcher) add(ids []string, m Match) error {
	sums, err := s.idx.Summaries(ids)
	if err != nil {
		return err
	}
	s.addSummaries(ids, sums, m)
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
