package search

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/search/query"

	"github.com/nixrepo/nixrepo/index"
)

// The exact and prefix tiers: names read from the term dictionaries.

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
	terms := shortestFirst(set)
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

// shortestFirst returns the terms of set, shorter before longer, then in
// byte order.
func shortestFirst(set map[string]bool) []string {
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
	return terms
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
